"""Atari 2600 games through ale-py: which ids are games and their reference scores
(`registry`), the paper's preprocessing (`preprocess`), and the suite's arithmetic
(`scores`: human-normalised scores, mean, median and IQM with bootstrap intervals). Their vector envs are in
`asyncrl.vector.atari`."""
from .preprocess import (AtariOptions, AtariPreprocessed, FireOnReset, LifeLossTerminal, make_atari,
                         make_atari_reference)
from .registry import (ALE_ENTRY_POINT, REFERENCE_SCORES, REFERENCE_SOURCE, atari_id, game_of, human_normalized,
                       is_atari_id, looks_atari, register, require_ale)

__all__ = ["AtariOptions", "AtariPreprocessed", "FireOnReset", "LifeLossTerminal", "make_atari",
           "make_atari_reference", "ALE_ENTRY_POINT", "REFERENCE_SCORES", "REFERENCE_SOURCE", "atari_id", "game_of",
           "human_normalized", "is_atari_id", "looks_atari", "register", "require_ale"]
