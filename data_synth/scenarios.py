"""The eleven ad scenarios of the paper and the story parameters behind each.

The names and the seen/unseen split follow the paper (section 4.1.1): nine
scenarios are seen in training and get task IDs 1..9, and two, Clinics and
Home, appear only in the test split and get task ID 0 ("unknown").

Every number in this file is part of the generative story told in the data
chapter of the book. They were fixed from that story before any model was
trained, and they are never changed to make one model look better than another.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------
# Families of related scenarios (the blocks of the relatedness matrix)
# ---------------------------------------------------------------------------

FAMILIES: tuple[str, ...] = ("travel", "retail", "finance", "health", "local")


@dataclass(frozen=True)
class Scenario:
    """One ad scenario and the parameters of its generative story."""

    name: str  # short name, as in the paper's tables
    long_name: str  # the name the paper uses in section 4.1.1
    task_id: int  # 1..9 for seen scenarios, 0 for unseen ones
    seen: bool  # True when the scenario appears in training splits
    family: dict[str, float]  # loading on each family (normalised later)
    train_share: float  # share of the training rows (seen scenarios only)
    test_share: float  # share of the test rows
    positive_rate: float  # target share of relevant query-ad pairs
    signal: float  # scale of the relevance logit: larger is easier
    missing: tuple[str, ...]  # features whose extractor never fires here
    teacher_temperature: float  # teacher logit scale: <1 under-, >1 over-confident
    teacher_shift: float  # teacher logit offset: its miscalibration
    teacher_noise: float  # std of the teacher's error on the logit scale
    llm_flip: float  # probability that an LLM label is flipped


# Features missing in a scenario are set to the extractor's default value, 0.
_NO_LOCATION = ("sim_location", "flag_location_match")
_NO_BRAND = ("sim_brand", "flag_brand_match")
_NO_PRICE = ("q_price_competitiveness",)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("Hotel", "Hotel", 1, True, {"travel": 0.9, "local": 0.4},
             0.20, 0.17, 0.55, 1.0, (), 0.8, 0.3, 0.9, 0.08),
    Scenario("Store", "Store", 2, True, {"retail": 1.0},
             0.18, 0.15, 0.70, 2.2, _NO_LOCATION, 1.2, -0.2, 0.6, 0.05),
    Scenario("Tours", "Tours Activity", 3, True, {"travel": 1.0},
             0.08, 0.07, 0.75, 1.6, _NO_BRAND, 0.9, 0.4, 0.8, 0.06),
    Scenario("Auto", "Automobile", 4, True, {"retail": 0.8, "finance": 0.3},
             0.12, 0.10, 0.85, 1.8, _NO_LOCATION, 1.1, 0.0, 0.7, 0.04),
    Scenario("Card", "Credit Card", 5, True, {"finance": 1.0},
             0.06, 0.06, 0.80, 2.0, _NO_LOCATION + _NO_PRICE, 0.7, -0.4, 0.8, 0.05),
    Scenario("Health", "Health Insurance", 6, True,
             {"health": 0.7, "finance": 0.7},
             0.07, 0.06, 0.65, 1.9, _NO_PRICE, 1.0, 0.2, 0.7, 0.06),
    Scenario("Insurance", "Insurance Service", 7, True,
             {"finance": 0.9, "health": 0.3},
             0.10, 0.08, 0.50, 1.1, _NO_LOCATION + _NO_PRICE, 1.3, 0.1, 1.0, 0.09),
    Scenario("Cruise", "Cruise", 8, True, {"travel": 1.0},
             0.04, 0.04, 0.75, 2.6, _NO_BRAND, 0.9, -0.3, 0.6, 0.04),
    Scenario("RealEstate", "Real Estate", 9, True,
             {"local": 0.8, "finance": 0.5},
             0.15, 0.13, 0.80, 1.2, _NO_BRAND, 1.1, 0.3, 0.9, 0.07),
    # Unseen: related to seen scenarios through their families, copies of none.
    Scenario("Clinics", "Doctor & Clinic", 0, False,
             {"health": 0.85, "local": 0.5},
             0.0, 0.07, 0.60, 1.4, _NO_BRAND + _NO_PRICE, 1.0, 0.0, 0.8, 0.06),
    Scenario("Home", "Home Service", 0, False,
             {"local": 0.8, "retail": 0.55},
             0.0, 0.07, 0.78, 2.0, _NO_BRAND, 1.0, 0.0, 0.7, 0.05),
)

SCENARIO_NAMES: tuple[str, ...] = tuple(s.name for s in SCENARIOS)
SEEN: tuple[str, ...] = tuple(s.name for s in SCENARIOS if s.seen)
UNSEEN: tuple[str, ...] = tuple(s.name for s in SCENARIOS if not s.seen)
NUM_TASK_SLOTS = len(SEEN) + 1  # one-hot width N: slot 0 is "unknown"


def scenario(name: str) -> Scenario:
    """Return the scenario called ``name``.

    Raises
    ------
    ValueError
        If no scenario has that name.
    """
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ValueError(
        f"scenario must be one of {list(SCENARIO_NAMES)}; got {name!r}"
    )


def task_id_of(name: str) -> int:
    """Task ID of a scenario: 1..9 when seen in training, 0 when unseen."""
    return scenario(name).task_id
