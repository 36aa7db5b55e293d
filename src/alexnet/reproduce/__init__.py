"""Experiments that reproduce the paper's figures on small hardware.

``relu_vs_tanh``: Figure 1 (§3.1), a four-layer convolutional network reaching
25% training error on CIFAR-10 several times faster with ReLUs than with tanh
units. ``alexnet reproduce relu-vs-tanh`` runs it; README "Results" has the
measured factor.
"""
