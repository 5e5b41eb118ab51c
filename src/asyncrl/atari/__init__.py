"""Atari 2600 games through ale-py: which ids are games and their reference scores
(`registry`), and the paper's preprocessing (`preprocess`). Their vector envs are in
`asyncrl.vector.atari`."""
from .preprocess import (AtariOptions, AtariPreprocessed, FireOnReset, LifeLossTerminal, make_atari,
                         make_atari_reference)
from .registry import (ALE_ENTRY_POINT, REFERENCE_SCORES, REFERENCE_SOURCE, game_of, human_normalized, is_atari_id,
                       looks_atari, register, require_ale)

__all__ = ["AtariOptions", "AtariPreprocessed", "FireOnReset", "LifeLossTerminal", "make_atari",
           "make_atari_reference", "ALE_ENTRY_POINT", "REFERENCE_SCORES", "REFERENCE_SOURCE", "game_of",
           "human_normalized", "is_atari_id", "looks_atari", "register", "require_ale"]
