"""A trained expert and the files it lives in: everything but its training.

- :mod:`.layout`   where one env's expert files are (``results/experts/{env}/…``), named once
- :mod:`.monitor`  the episode log (write, read and check it) and the paper's smoothing rule
- :mod:`.curves`   the training curve, drawn one way for ``curve.png`` and the plots grid
- :mod:`.load`     loading a trained expert, and playing episodes with it
- :mod:`.sampler`  batched sampled actions for dataset collection

This package's ``__init__`` and :mod:`.layout` import nothing heavy, so rule files may use
the layout; the other modules import pandas, matplotlib or torch and SB3.
"""
