"""Techbridge valuation: documented valuations of achievements: income, cost and market approaches, Monte Carlo ranges."""
