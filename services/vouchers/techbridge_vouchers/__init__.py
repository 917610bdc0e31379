"""Techbridge vouchers: technology-innovation voucher programmes on a double-entry ledger."""
