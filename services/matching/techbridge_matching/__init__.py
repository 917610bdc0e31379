"""Techbridge matching: technology demands, supply-demand matching that explains itself, and transfer deals."""
