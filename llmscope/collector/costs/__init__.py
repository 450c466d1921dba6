"""What calls cost and what they may spend: prices, budgets, and the accounting of both.

``pricing.py`` prices every record as it is written, ``budgets.py`` refuses a gateway call once a
budget is spent, ``accounting.py`` counts each accepted record against both (and the metrics).
"""
