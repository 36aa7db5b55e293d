"""Experiments that reproduce the paper's findings on small hardware (docs/results.md).

``relu_vs_tanh``: Figure 1 (§3.1), a four-layer convolutional network reaching 25%
training error on CIFAR-10 several times faster with ReLUs than with tanh units
(``alexnet reproduce relu-vs-tanh``). ``method``: the paper's whole method on CIFAR-10's
photos upscaled to 227, with 10-crop testing and model averaging (``alexnet reproduce
cifar10``); ``full``: the same on all 50,000 images with §5's plateau schedule to its
third /10 drop (``alexnet reproduce cifar10 --full``). ``lrn_regime``: how much §3.3's
LRN does at initialisation with the paper's pixel inputs and with standardised ones
(``alexnet reproduce lrn-regime``).
"""
