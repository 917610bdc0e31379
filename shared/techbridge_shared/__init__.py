"""Techbridge's common plumbing: nothing here knows about achievements, deals or vouchers."""
