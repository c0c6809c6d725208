"""Run profiles: how much data, how many epochs and seeds.

``AUTOTASK_PROFILE`` (``smoke``, ``default`` or ``paper``) is read here and
nowhere else. Notebooks mirror it in their ``parameters`` cell.

* ``smoke``: tiny data, one epoch per stage, one seed; every notebook runs in
  seconds. The tests and ``pytest --nbmake`` use it.
* ``default``: what the book builds with on a laptop CPU; the paper's 258,000
  test rows, a few epochs, three seeds.
* ``paper``: the paper's schedule (30 epochs on teacher labels, then 45 on LLM
  labels) on more data; meant for a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from data_synth import DataConfig, config_for_profile

from .train import TrainConfig

ENV_VAR = "AUTOTASK_PROFILE"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    """Everything a profile fixes."""

    name: str  # smoke, default or paper
    data: DataConfig  # sizes and story parameters of the synthetic data
    data_seed: int  # seed of the data set every experiment shares
    seeds: tuple[int, ...]  # model seeds: initialisation and shuffling
    train: TrainConfig  # optimiser, batch size and epochs per stage
    device: str  # "cpu", or "auto" for CUDA when present


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", data=config_for_profile("smoke"), data_seed=0, seeds=(0,),
        train=TrainConfig(batch_size=256, epochs_teacher=1, epochs_llm=1),
        device="cpu",
    ),
    "default": Profile(
        name="default", data=config_for_profile("default"), data_seed=0,
        seeds=(0, 1, 2),
        train=TrainConfig(batch_size=512, epochs_teacher=2, epochs_llm=2),
        device="cpu",
    ),
    "paper": Profile(
        name="paper", data=config_for_profile("paper"), data_seed=0,
        seeds=(0, 1, 2),
        train=TrainConfig(batch_size=512, epochs_teacher=30, epochs_llm=45),
        device="auto",
    ),
}


def profile_name() -> str:
    """The profile named by ``AUTOTASK_PROFILE``; ``default`` when unset."""
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_PROFILE


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, or the one ``AUTOTASK_PROFILE`` names.

    Raises
    ------
    ValueError
        If the name is not a known profile.
    """
    name = profile_name() if name is None else name
    if name not in PROFILES:
        raise ValueError(
            f"profile must be one of {sorted(PROFILES)} (set {ENV_VAR} or pass "
            f"name); got {name!r}"
        )
    return PROFILES[name]
