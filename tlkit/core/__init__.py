"""The ground floor: where code runs, seeds, and the argument checks every layer shares.

Nothing here imports from the layers above (data, models, learn, teach).
"""
