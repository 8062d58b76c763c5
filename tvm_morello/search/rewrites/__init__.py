"""Rewrites (Morello's scheduling actions): each yields applicable actions for a spec."""
from itertools import chain

from .base import Action
from .move import CacheView, PackRhs, RegisterOut, move_actions
from .select import Select, select_actions
from .split_k import SplitK, split_k_actions
from .tile_out import TileOut, tile_out_actions
from .to_accum import ToAccum, to_accum_actions

REWRITES = (select_actions, move_actions, to_accum_actions, split_k_actions, tile_out_actions)


def actions_for(spec, target):
    """Every rewrite applicable to ``spec`` on ``target``."""
    return chain.from_iterable(rewrite(spec, target) for rewrite in REWRITES)


__all__ = [
    "Action", "CacheView", "PackRhs", "REWRITES", "RegisterOut", "Select", "SplitK", "TileOut", "ToAccum",
    "actions_for",
]
