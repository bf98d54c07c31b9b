"""Necks: the FPN shared by both branches of a composite backbone."""
from .cb_fpn import CBFPN

__all__ = ['CBFPN']
