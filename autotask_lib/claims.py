"""The paper's five claims, the experiments behind them, and their verdicts.

The book tests five claims of Guo, Damani and Chang (arXiv 2407.06549; the
list is DESIGN.md section 7):

* C1: the single model beats the baseline's general branch on every scenario
  (Table 1);
* C2: its largest gains are on the scenarios unseen in training (Table 1);
* C3: calibrated, it beats most of the baseline's calibrated task-specific
  branches (Table 2);
* C4: the task-ID encoding beats no task ID and the task ID as a number on the
  unseen scenarios (Table 3);
* C5: causal attention beats full attention, concatenation beats summation,
  and the token and position embeddings help training converge (section
  4.3.2).

Each claim is checked by one or more tests (:data:`CLAIM_TESTS`). A test
compares a model with a reference on paired differences: the same seed, and
the same bootstrap resamples of the test rows. Its 95% interval covers the
model seeds and, where the experiment has bootstrap replicates, the test rows
(see :func:`autotask_lib.metrics.summarise`).

The verdict rules
-----------------
A verdict is ``"held"``, ``"did not hold"`` or ``"inconclusive"``. The rules
below were fixed, and this module written, before any of the results they
judge had been computed; no threshold here was changed after.

1. One difference (:func:`interval_verdict`). The claim is held when the whole
   95% interval of the difference lies on the side of zero the claim
   predicts; it did not hold when the whole interval lies on the other side;
   otherwise (the interval contains zero, or there is no interval, as with
   one seed and no bootstrap) it is inconclusive.
2. A count over scenarios (:func:`count_verdict`). "Better on at least
   ``need`` of ``n`` scenarios": each scenario gets rule 1. The claim is held
   when at least ``need`` scenarios held; it did not hold when so many did not
   hold that fewer than ``need`` could be wins even if every inconclusive
   scenario were one (more than ``n - need``); otherwise it is inconclusive.
3. Several tests of one claim (:func:`combine_verdicts`). The claim is held
   when every test held, did not hold when any test did not hold, and is
   inconclusive otherwise.

Rules 2 and 3 are the ``at least`` and ``and`` of three-valued logic, with
"inconclusive" as the unknown value: a verdict is only reached when no
outcome of the undecided parts could change it.

The tests
---------
Fixed with the rules. C1 counts the scenarios where AutoTask beats the general
branch and needs the paper's own count: 11 of 11 by ROC AUC, 10 of 11 by PR
AUC. C2 reads one contrast: the mean ROC AUC gain over the general branch on
the two unseen scenarios minus the mean gain on the nine seen ones. C3 needs 5
of the 9 seen scenarios ("most") by ROC AUC, both models calibrated with
isotonic regression, the calibrator the Table 2 chapter chose before its
results. C4 needs both unseen scenarios by ROC AUC, against no task ID and
against the task ID as a number. C5 reads the ROC AUC averaged over the eleven
scenarios for attention and for fusion, and for the embeddings the mean
training loss over the epochs of each training stage (lower when the loss
falls faster or further).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

import data_synth

from .baseline import BaselineConfig
from .experiments import Experiment, ExperimentConfig, Variant, run_experiment
from .metrics import summarise
from .model import AutoTaskConfig
from .paper import paper_table
from .profiles import Profile, get_profile
from .tables import paired_gains, paired_summary
from .train import TrainConfig

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)

# The direction a claim predicts for its difference (model minus reference).
BETTER = ("higher", "lower")

ALL = tuple(data_synth.SCENARIO_NAMES)
SEEN = tuple(data_synth.SEEN)
UNSEEN = tuple(data_synth.UNSEEN)


# ---------------------------------------------------------------------------
# The three rules
# ---------------------------------------------------------------------------


def interval_verdict(lo: float, hi: float, *, better: str = "higher") -> str:
    """Rule 1: the verdict on one difference from its 95% interval.

    Parameters
    ----------
    lo, hi : float
        The interval of the difference, model minus reference. NaN (no
        interval) gives ``"inconclusive"``.
    better : {"higher", "lower"}
        The side of zero the claim predicts.

    Returns
    -------
    str
        ``"held"`` when the whole interval lies on the predicted side of zero,
        ``"did not hold"`` when it lies wholly on the other side, else
        ``"inconclusive"``. An interval that touches zero is inconclusive.

    Raises
    ------
    ValueError
        On an unknown ``better`` or an interval with ``lo > hi``.
    """
    if better not in BETTER:
        raise ValueError(f"better must be one of {list(BETTER)}; got {better!r}")
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"lo must not exceed hi; got lo={lo!r}, hi={hi!r}")
    if better == "lower":
        lo, hi = -hi, -lo
    if lo > 0:
        return HELD
    if hi < 0:
        return NOT_HELD
    return INCONCLUSIVE


def _check_verdicts(verdicts, name: str) -> list[str]:
    verdicts = list(verdicts)
    bad = [v for v in verdicts if v not in VERDICTS]
    if bad:
        raise ValueError(
            f"{name} must hold only {list(VERDICTS)}; got {bad[0]!r}"
        )
    return verdicts


def count_verdict(verdicts: Iterable[str], need: int) -> str:
    """Rule 2: "better on at least ``need`` of these scenarios".

    Parameters
    ----------
    verdicts : iterable of str
        Rule 1's verdict on each scenario in the claim's scope.
    need : int
        How many scenarios must be clear wins, from 1 to their number.

    Returns
    -------
    str
        ``"held"`` with at least ``need`` held scenarios; ``"did not hold"``
        when more than ``n - need`` scenarios did not hold; else
        ``"inconclusive"``.

    Raises
    ------
    ValueError
        On an unknown verdict or a ``need`` outside 1 to n.
    """
    verdicts = _check_verdicts(verdicts, "verdicts")
    n = len(verdicts)
    if not isinstance(need, (int, np.integer)) or isinstance(need, bool) or not (
        1 <= need <= n
    ):
        raise ValueError(
            f"need must be an integer from 1 to the number of scenarios ({n}); "
            f"got {need!r}"
        )
    if verdicts.count(HELD) >= need:
        return HELD
    if verdicts.count(NOT_HELD) > n - need:
        return NOT_HELD
    return INCONCLUSIVE


def combine_verdicts(verdicts: Iterable[str]) -> str:
    """Rule 3: one verdict for a claim from the verdicts of its tests.

    Parameters
    ----------
    verdicts : iterable of str
        One verdict per test, at least one.

    Returns
    -------
    str
        ``"held"`` when every test held, ``"did not hold"`` when any test did
        not hold, else ``"inconclusive"``.

    Raises
    ------
    ValueError
        On no verdicts or an unknown verdict.
    """
    verdicts = _check_verdicts(verdicts, "verdicts")
    if not verdicts:
        raise ValueError("verdicts must hold at least one verdict; got none")
    if NOT_HELD in verdicts:
        return NOT_HELD
    if all(v == HELD for v in verdicts):
        return HELD
    return INCONCLUSIVE


# ---------------------------------------------------------------------------
# The claims and their tests
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, in our words."""

    id: str  # "C1" to "C5"
    statement: str  # what the paper claims
    source: str  # where the paper shows it


CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("C1", "AutoTask beats the baseline's general branch on every "
          "scenario.", "Table 1"),
    Claim("C2", "AutoTask's largest gains over the general branch are on the "
          "unseen scenarios.", "Table 1"),
    Claim("C3", "Calibrated, AutoTask beats most of the baseline's calibrated "
          "task-specific branches.", "Table 2"),
    Claim("C4", "The task-ID encoding beats no task ID and the task ID as a "
          "number on the unseen scenarios.", "Table 3"),
    Claim("C5", "Causal attention beats full attention, concatenation beats "
          "summation, and token and position embeddings help training "
          "converge.", "section 4.3.2"),
)}

TEST_KINDS = ("count", "contrast", "loss")
LOSS_METRICS = {"loss_teacher": "teacher", "loss_llm": "llm"}
METRIC_NAMES = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC",
                "loss_teacher": "stage-1 training loss",
                "loss_llm": "stage-2 training loss"}


@dataclass(frozen=True)
class ClaimTest:
    """One test of a claim: which difference it reads and which rule judges it.

    ``kind`` says how: ``"count"`` applies rule 2 to the per-scenario
    differences of ``metric`` over ``scenarios``; ``"contrast"`` applies
    rule 1 to one weighted sum of them, ``sum_s weights[s] * (model -
    reference)_s``; ``"loss"`` applies rule 1 to the difference of the mean
    training loss over the epochs of one stage (``metric`` ``"loss_teacher"``
    or ``"loss_llm"``), where lower is better.
    """

    claim: str  # the claim's id, "C1" to "C5"
    part: str  # the part of the claim the test checks
    experiment: str  # the experiment whose results it reads
    model: str  # the variant the claim favours
    reference: str  # the variant it is compared with
    metric: str  # "roc_auc", "pr_auc", "loss_teacher" or "loss_llm"
    kind: str  # "count", "contrast" or "loss"
    scenarios: tuple[str, ...] = ALL  # the scope (not used by "loss")
    need: int | None = None  # count: scenarios that must be clear wins
    weights: tuple[float, ...] | None = None  # contrast: one per scenario
    better: str = "higher"  # the side of zero the claim predicts
    description: str = ""  # the test in words

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(
                f"claim must be one of {list(CLAIMS)}; got {self.claim!r}"
            )
        if self.kind not in TEST_KINDS:
            raise ValueError(
                f"kind must be one of {list(TEST_KINDS)}; got {self.kind!r}"
            )
        if self.better not in BETTER:
            raise ValueError(
                f"better must be one of {list(BETTER)}; got {self.better!r}"
            )
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        if self.kind == "count" and (self.need is None or not (
                1 <= self.need <= len(self.scenarios))):
            raise ValueError(
                f"need must be from 1 to {len(self.scenarios)} for a count "
                f"test; got {self.need!r}"
            )
        if self.kind == "contrast" and (
                self.weights is None or len(self.weights) != len(self.scenarios)):
            raise ValueError(
                "weights must give one weight per scenario for a contrast "
                f"test; got {self.weights!r} for {len(self.scenarios)} scenarios"
            )
        if (self.kind == "loss") != (self.metric in LOSS_METRICS):
            raise ValueError(
                f"metric must be one of {list(LOSS_METRICS)} exactly when kind "
                f"is 'loss'; got metric={self.metric!r}, kind={self.kind!r}"
            )


def _gap_weights() -> tuple[float, ...]:
    # Mean over the unseen scenarios minus mean over the seen ones.
    return tuple(1 / len(UNSEEN) if s in UNSEEN else -1 / len(SEEN) for s in ALL)


def _mean_weights() -> tuple[float, ...]:
    return tuple(1 / len(ALL) for _ in ALL)


# Fixed before any result was computed. ``need`` for C1 is the paper's own
# count (11 of 11 by ROC AUC, 10 of 11 by PR AUC); for C3, "most" of the nine
# seen scenarios is five; C4 needs both unseen scenarios.
CLAIM_TESTS: tuple[ClaimTest, ...] = (
    ClaimTest("C1", "beats the general branch", "table1", "autotask",
              "baseline_general", "roc_auc", "count", ALL, need=11,
              description="ROC AUC higher on at least 11 of the 11 scenarios"),
    ClaimTest("C1", "beats the general branch", "table1", "autotask",
              "baseline_general", "pr_auc", "count", ALL, need=10,
              description="PR AUC higher on at least 10 of the 11 scenarios"),
    ClaimTest("C2", "largest gains unseen", "table1", "autotask",
              "baseline_general", "roc_auc", "contrast", ALL,
              weights=_gap_weights(),
              description="mean ROC AUC gain on the 2 unseen scenarios minus "
              "the mean gain on the 9 seen ones is above zero"),
    ClaimTest("C3", "beats calibrated branches", "table2", "autotask_isotonic",
              "specific_isotonic", "roc_auc", "count", SEEN, need=5,
              description="calibrated ROC AUC higher on at least 5 of the 9 "
              "seen scenarios"),
    ClaimTest("C4", "encoding beats no task ID", "table3", "encoding", "none",
              "roc_auc", "count", UNSEEN, need=2,
              description="ROC AUC higher than without a task ID on both "
              "unseen scenarios"),
    ClaimTest("C4", "encoding beats the ID number", "table3", "encoding",
              "number", "roc_auc", "count", UNSEEN, need=2,
              description="ROC AUC higher than with the task ID as a number "
              "on both unseen scenarios"),
    ClaimTest("C5", "causal beats full attention", "ablations", "paper",
              "full_attention", "roc_auc", "contrast", ALL,
              weights=_mean_weights(),
              description="ROC AUC averaged over the 11 scenarios higher with "
              "causal than with full attention"),
    ClaimTest("C5", "concatenation beats summation", "ablations", "paper",
              "sum_fusion", "roc_auc", "contrast", ALL, weights=_mean_weights(),
              description="ROC AUC averaged over the 11 scenarios higher with "
              "concatenation than with summation"),
    ClaimTest("C5", "embeddings help convergence", "ablations", "paper",
              "no_embeddings", "loss_teacher", "loss", better="lower",
              description="mean training loss over the stage-1 epochs lower "
              "with learned embeddings"),
    ClaimTest("C5", "embeddings help convergence", "ablations", "paper",
              "no_embeddings", "loss_llm", "loss", better="lower",
              description="mean training loss over the stage-2 epochs lower "
              "with learned embeddings"),
)


RULES_TEXT = """\
1. **One difference.** A claim about one difference (model minus reference) \
**held** when the whole 95% interval lies on the side of zero the claim \
predicts, **did not hold** when it lies wholly on the other side, and is \
**inconclusive** when it contains zero or when there is no interval.
2. **A count over scenarios.** "Better on at least *k* of *n* scenarios": \
each scenario is judged by rule 1. The claim **held** when at least *k* \
scenarios held; it **did not hold** when more than *n* - *k* did not hold, \
so that fewer than *k* wins were possible even if every inconclusive \
scenario were a win; otherwise it is **inconclusive**.
3. **Several tests.** A claim with several tests **held** when every test \
held, **did not hold** when any test did not hold, and is **inconclusive** \
otherwise."""


def rules_markdown() -> str:
    """The three verdict rules as Markdown, for a notebook to show."""
    return RULES_TEXT


# ---------------------------------------------------------------------------
# The experiments behind the claims
# ---------------------------------------------------------------------------

# A factor of 2 between the facets' learning rates, centred (geometrically) on
# the paper's shared rate: the paper says only that the facets' best rates
# differ slightly. Facet 1 (tokens e1 = 8 wide) gets the larger step and facet 2
# (tokens e2 = 192 wide) the smaller, as wider layers usually take smaller
# steps. Fixed before any result; no rate was searched.
LR_FACET_FACTOR = math.sqrt(2.0)


def per_facet_train(train: TrainConfig) -> TrainConfig:
    """``train`` with facet 1 at ``lr * sqrt(2)`` and facet 2 at ``lr / sqrt(2)``.

    Parameters
    ----------
    train : TrainConfig
        The shared schedule; its ``lr`` is the centre of the two rates.

    Returns
    -------
    TrainConfig
    """
    if not isinstance(train, TrainConfig):
        raise TypeError(f"train must be a TrainConfig; got {type(train).__name__}")
    return replace(train, lr_facet1=train.lr * LR_FACET_FACTOR,
                   lr_facet2=train.lr / LR_FACET_FACTOR)


def table1_variants() -> dict[str, Variant]:
    """AutoTask and the baseline's general branch, uncalibrated (Table 1)."""
    return {
        "autotask": Variant("autotask", AutoTaskConfig()),
        "baseline_general": Variant("baseline", BaselineConfig(),
                                    "baseline_general"),
    }


def table2_variants() -> dict[str, Variant]:
    """AutoTask and the task-specific branches, raw, Platt and isotonic (Table 2).

    The same variants as the Table 2 chapter, so that its cached table is
    reused.
    """
    autotask, baseline = AutoTaskConfig(), BaselineConfig()
    return {
        "autotask": Variant("autotask", autotask),
        "autotask_platt": Variant("autotask", autotask, calibration="platt"),
        "autotask_isotonic": Variant("autotask", autotask,
                                     calibration="isotonic"),
        "specific": Variant("baseline", baseline, "baseline_specific"),
        "specific_platt": Variant("baseline", baseline, "baseline_specific",
                                  "platt"),
        "specific_isotonic": Variant("baseline", baseline, "baseline_specific",
                                     "isotonic"),
    }


def table3_variants() -> dict[str, Variant]:
    """No task ID, the task ID as a number, the task-ID encoding (Table 3)."""
    return {mode: Variant("autotask", AutoTaskConfig(task_id_mode=mode))
            for mode in ("none", "number", "encoding")}


def ablation_variants() -> dict[str, Variant]:
    """The paper's model and the three ablations behind claim C5."""
    return {
        "paper": Variant("autotask", AutoTaskConfig()),
        "full_attention": Variant("autotask", AutoTaskConfig(attention="full")),
        "sum_fusion": Variant("autotask", AutoTaskConfig(fusion="sum")),
        "no_embeddings": Variant("autotask", AutoTaskConfig(embeddings=False)),
    }


def exploratory_variants(profile: Profile) -> dict[str, Variant]:
    """The paper's model, each facet alone, and one learning rate per facet.

    The paper makes no claim about these (section 4.3.2 only suggests that
    per-facet rates might help); they run with one seed.
    """
    return {
        "paper": Variant("autotask", AutoTaskConfig()),
        "facet1_only": Variant("autotask", AutoTaskConfig(facets="facet1")),
        "facet2_only": Variant("autotask", AutoTaskConfig(facets="facet2")),
        "lr_per_facet": Variant("autotask", AutoTaskConfig(),
                                train=per_facet_train(profile.train)),
    }


RANKING = ExperimentConfig(metrics=("roc_auc", "pr_auc"))


def run_claim_experiment(name: str, profile: Profile | None = None, *,
                         n_boot: int = 200, prepared=None,
                         progress: bool = True) -> Experiment:
    """Train (or load) one of the experiments the claims read.

    Parameters
    ----------
    name : {"table1", "table2", "table3", "ablations", "exploratory"}
        ``table2`` measures ranking metrics and the calibration error, as
        the Table 2 chapter does; the others ROC AUC and PR AUC.
        ``exploratory`` uses the profile's first seed only; the others use
        every seed of the profile.
    profile : Profile, optional
        The profile ``AUTOTASK_PROFILE`` names when omitted.
    n_boot : int
        Bootstrap resamples of the test rows; 0 gives intervals over seeds
        only.
    prepared : PreparedData, optional
        The profile's tensors, to avoid reloading them.
    progress : bool
        Show progress bars while training.

    Returns
    -------
    Experiment

    Raises
    ------
    ValueError
        On an unknown name.
    """
    profile = get_profile() if profile is None else profile
    builders = {
        "table1": (table1_variants(), RANKING),
        "table2": (table2_variants(), ExperimentConfig()),
        "table3": (table3_variants(), RANKING),
        "ablations": (ablation_variants(), RANKING),
        "exploratory": (exploratory_variants(profile), RANKING),
    }
    if name not in builders:
        raise ValueError(f"name must be one of {list(builders)}; got {name!r}")
    variants, config = builders[name]
    config = replace(config, n_boot=n_boot)
    seeds = profile.seeds[:1] if name == "exploratory" else profile.seeds
    return run_experiment(name, variants, profile, seeds=seeds, config=config,
                          prepared=prepared, progress=progress)


def training_histories(experiment: Experiment,
                       variants: Iterable[str] | None = None) -> pd.DataFrame:
    """Training loss per epoch of every run of an experiment.

    Parameters
    ----------
    experiment : Experiment
    variants : iterable of str, optional
        Variants to include; all when omitted.

    Returns
    -------
    DataFrame
        ``variant, seed, stage, epoch, step, loss``; ``step`` counts epochs
        across both stages from 1.
    """
    names = list(experiment.variants) if variants is None else list(variants)
    frames = []
    for name in names:
        for seed in experiment.seeds:
            h = experiment.run(name, seed).history.reset_index(drop=True)
            frames.append(h[["stage", "epoch", "loss"]].assign(
                variant=name, seed=seed, step=np.arange(1, len(h) + 1)))
    table = pd.concat(frames, ignore_index=True)
    return table[["variant", "seed", "stage", "epoch", "step", "loss"]]


# ---------------------------------------------------------------------------
# Evaluating the tests
# ---------------------------------------------------------------------------


@dataclass
class Evidence:
    """What a test reads from one experiment: tidy results and replicates.

    ``results`` has ``variant, seed, scenario, metric, value``;
    ``replicates`` the same plus ``replicate`` (may be empty or None);
    ``histories`` the training losses of :func:`training_histories` (needed by
    loss tests only).
    """

    results: pd.DataFrame  # one row per variant, seed, scenario and metric
    replicates: pd.DataFrame | None = None  # bootstrap values over test rows
    histories: pd.DataFrame | None = None  # training loss per epoch

    @classmethod
    def of(cls, experiment: Experiment, *, histories: bool = False) -> Evidence:
        """The evidence of a run experiment, with its training losses if asked."""
        return cls(experiment.results, experiment.replicates,
                   training_histories(experiment) if histories else None)


def _replicates(ev: Evidence) -> pd.DataFrame | None:
    reps = ev.replicates
    return reps if reps is not None and len(reps) else None


def _what(test: ClaimTest | None) -> str:
    return "the evidence" if test is None else (
        f"the evidence of test {test.claim} ({test.part})")


def _metric_rows(table: pd.DataFrame, metric: str, scenarios,
                 test: ClaimTest | None = None) -> pd.DataFrame:
    table = table[table["metric"] == metric]
    missing = [s for s in scenarios if s not in set(table["scenario"])]
    if missing:
        raise ValueError(
            f"{_what(test)} lacks {metric} for the scenarios {missing}"
        )
    return table[table["scenario"].isin(scenarios)]


def _check_variants(table: pd.DataFrame, model: str, reference: str,
                    test: ClaimTest | None = None) -> None:
    have = set(table["variant"])
    missing = [v for v in (model, reference) if v not in have]
    if missing:
        raise ValueError(
            f"{_what(test)} must hold the variants {[model, reference]}; "
            f"missing {missing}"
        )


def scenario_differences(test: ClaimTest, ev: Evidence) -> pd.DataFrame:
    """Per-scenario difference, model minus reference, with rule 1's verdict.

    Parameters
    ----------
    test : ClaimTest
        A count or contrast test.
    ev : Evidence

    Returns
    -------
    DataFrame
        One row per scenario of the test's scope, in its order: ``scenario,
        mean, lo, hi, n_seeds, covers, verdict`` (values in [0, 1] units).

    Raises
    ------
    ValueError
        On a loss test, or evidence lacking a variant, metric or scenario.
    """
    if test.kind == "loss":
        raise ValueError(
            f"test must be a count or contrast test; got kind={test.kind!r}"
        )
    _check_variants(ev.results, test.model, test.reference, test)
    results = _metric_rows(ev.results, test.metric, test.scenarios, test)
    reps = _replicates(ev)
    if reps is not None:
        reps = reps[(reps["metric"] == test.metric)
                    & reps["scenario"].isin(test.scenarios)]
    table = paired_summary(results, test.model, test.reference,
                           replicates=reps, column="variant")
    table = table.set_index("scenario").reindex(list(test.scenarios))
    table["verdict"] = [interval_verdict(lo, hi, better=test.better)
                        for lo, hi in zip(table["lo"], table["hi"])]
    cols = ["mean", "lo", "hi", "n_seeds", "covers", "verdict"]
    return table[cols].reset_index()


def _weighted(diff: pd.DataFrame, by: list[str], weights: pd.Series) -> pd.DataFrame:
    # Weighted sum over scenarios of each group; NaN when a scenario is missing.
    wide = diff.pivot_table(index=by, columns="scenario", values="value",
                            aggfunc="first")
    wide = wide.reindex(columns=weights.index)
    value = (wide * weights).sum(axis=1, min_count=len(weights))
    value[wide.isna().any(axis=1)] = np.nan
    return value.rename("value").reset_index()


def weighted_difference(ev: Evidence, model: str, reference: str, *,
                        weights: Mapping[str, float] | None = None,
                        metric: str = "roc_auc") -> pd.DataFrame:
    """Mean and 95% interval of a weighted sum of per-scenario differences.

    Each seed gives ``sum_s w_s (model - reference)_s``; so does each
    bootstrap replicate, whose scenarios are resampled independently (a
    bootstrap stratified by scenario).

    Parameters
    ----------
    ev : Evidence
    model, reference : str
        Variant names.
    weights : mapping, optional
        Scenario -> weight; equal weights summing to 1 over the eleven
        scenarios when omitted (the difference of the macro averages).
    metric : str
        ``roc_auc`` or ``pr_auc``.

    Returns
    -------
    DataFrame
        One row: ``mean, lo, hi, n_seeds, half_seeds, half_rows, covers``.

    Raises
    ------
    ValueError
        On evidence lacking a variant, the metric or a weighted scenario.
    """
    if weights is None:
        weights = dict(zip(ALL, _mean_weights()))
    return _weighted_difference(ev, model, reference, weights, metric, None)


def _weighted_difference(ev, model, reference, weights, metric, test):
    """:func:`weighted_difference`, naming ``test`` in its errors."""
    weights = pd.Series(dict(weights), dtype=float)
    _check_variants(ev.results, model, reference, test)
    results = _metric_rows(ev.results, metric, list(weights.index), test)
    diff = paired_gains(results, model, reference, column="variant")
    per_seed = _weighted(diff, ["seed"], weights).assign(test="contrast")
    reps = _replicates(ev)
    per_rep = None
    if reps is not None:
        reps = reps[(reps["metric"] == metric)
                    & reps["scenario"].isin(weights.index)]
        rdiff = paired_gains(reps, model, reference, column="variant")
        per_rep = _weighted(rdiff, ["seed", "replicate"], weights).assign(
            test="contrast")
    out = summarise(per_seed, by=("test",), replicates=per_rep)
    return out.drop(columns="test")


def contrast_summary(test: ClaimTest, ev: Evidence) -> pd.DataFrame:
    """Mean and 95% interval of a contrast test (see :func:`weighted_difference`).

    Raises
    ------
    ValueError
        On a test that is not a contrast, or evidence lacking a variant,
        metric or scenario.
    """
    if test.kind != "contrast":
        raise ValueError(f"test must be a contrast test; got kind={test.kind!r}")
    return _weighted_difference(ev, test.model, test.reference,
                                dict(zip(test.scenarios, test.weights)),
                                test.metric, test)


def loss_summary(test: ClaimTest, ev: Evidence) -> pd.DataFrame:
    """Mean and 95% interval over seeds of a loss test's difference.

    Each seed gives the mean training loss over the epochs of the test's
    stage, model minus reference; the interval is a t-interval over seeds
    (training losses have no test rows to resample).

    Returns
    -------
    DataFrame
        One row: ``mean, lo, hi, n_seeds, half_seeds, half_rows, covers``.

    Raises
    ------
    ValueError
        On a test that is not a loss test, or missing histories.
    """
    if test.kind != "loss":
        raise ValueError(f"test must be a loss test; got kind={test.kind!r}")
    h = ev.histories
    if h is None or not len(h):
        raise ValueError(
            f"the evidence of test {test.claim} ({test.part}) needs training "
            "histories; got none"
        )
    _check_variants(h, test.model, test.reference, test)
    stage = LOSS_METRICS[test.metric]
    per = (h[h["stage"] == stage].groupby(["variant", "seed"])["loss"].mean()
           .unstack("variant"))
    diff = (per[test.model] - per[test.reference]).dropna()
    table = pd.DataFrame({"test": "loss", "seed": diff.index,
                          "value": diff.to_numpy()})
    if table.empty:
        raise ValueError(
            f"the histories hold no seed with both {test.model!r} and "
            f"{test.reference!r} in stage {stage!r}"
        )
    return summarise(table, by=("test",)).drop(columns="test")


def _paper_values(test: ClaimTest) -> pd.Series | None:
    # The paper's per-scenario difference (in points) for this test, if any.
    number = {"table1": 1, "table2": 2, "table3": 3}.get(test.experiment)
    if number is None:
        return None
    names = PAPER_MODELS[test.experiment]
    p = paper_table(number)
    p = p[p["metric"] == test.metric].pivot_table(
        index="task", columns="model", values="value_percent")
    return (p[names[test.model]] - p[names[test.reference]]).reindex(
        list(test.scenarios))


# Our variant names -> the paper's model names, per table.
PAPER_MODELS = {
    "table1": {"autotask": "proposed", "baseline_general": "baseline_general"},
    "table2": {"autotask_isotonic": "proposed_calibrated",
               "specific_isotonic": "baseline_task_specific_calibrated"},
    "table3": {"encoding": "task_id_encoding", "none": "no_task_id",
               "number": "task_id_number"},
}


def paper_gains(table: str, model: str, reference: str,
                metrics=("roc_auc", "pr_auc")) -> pd.DataFrame:
    """The paper's per-scenario gain of one model over another, in points.

    Parameters
    ----------
    table : {"table1", "table2", "table3"}
        The experiment whose variants are named (see ``PAPER_MODELS``).
    model, reference : str
        Our variant names.
    metrics : sequence of str

    Returns
    -------
    DataFrame
        ``variant`` (``"model - reference"``, as
        :func:`autotask_lib.tables.paired_gains` names it), ``scenario,
        metric, value``, for the scenarios the paper reports.

    Raises
    ------
    ValueError
        On a table or variant the paper has no counterpart for.
    """
    if table not in PAPER_MODELS:
        raise ValueError(f"table must be one of {list(PAPER_MODELS)}; got {table!r}")
    names = PAPER_MODELS[table]
    for v in (model, reference):
        if v not in names:
            raise ValueError(
                f"model and reference must be among {list(names)} for {table}; "
                f"got {v!r}"
            )
    p = paper_table(int(table[-1]))
    p = p[p["metric"].isin(metrics)].pivot_table(
        index=["metric", "task"], columns="model", values="value_percent")
    gain = (p[names[model]] - p[names[reference]]).rename("value").reset_index()
    gain = gain.rename(columns={"task": "scenario"})
    gain.insert(0, "variant", f"{model} - {reference}")
    return gain[["variant", "scenario", "metric", "value"]]


def paper_evidence(test: ClaimTest) -> str:
    """The paper's own evidence for a test, computed from its tables."""
    p = _paper_values(test)
    if p is None:
        return "stated without numbers"
    label = METRIC_NAMES[test.metric]
    if test.kind == "count":
        shown = p.dropna()
        return (f"{label} higher on {int((shown > 0).sum())} of {len(shown)} "
                "scenarios")
    w = pd.Series(test.weights, index=list(test.scenarios))
    return f"{float((p * w).sum()):+.1f} {label} points"


def evaluate_tests(evidence: Mapping[str, Evidence],
                   tests: Iterable[ClaimTest] = CLAIM_TESTS) -> pd.DataFrame:
    """Apply every test's rule to the evidence.

    Parameters
    ----------
    evidence : mapping
        Experiment name (``ClaimTest.experiment``) -> :class:`Evidence`.
    tests : iterable of ClaimTest
        The tests; :data:`CLAIM_TESTS` when omitted.

    Returns
    -------
    DataFrame
        One row per test: ``claim, part, test, metric, kind, paper, mean, lo,
        hi, covers, n, need, clear_wins, clear_losses, verdict``. For count
        tests ``mean, lo, hi`` are empty and the counts are filled; for the
        others it is the other way round. AUC differences are in [0, 1]
        units, loss differences in the loss's units.

    Raises
    ------
    ValueError
        When the evidence lacks a test's experiment, variant, metric or
        scenario.
    """
    rows = []
    for test in tests:
        if test.experiment not in evidence:
            raise ValueError(
                f"evidence must hold the experiment {test.experiment!r} for "
                f"test {test.claim} ({test.part}); got {sorted(evidence)}"
            )
        ev = evidence[test.experiment]
        row = {"claim": test.claim, "part": test.part, "test": test.description,
               "metric": test.metric, "kind": test.kind,
               "paper": paper_evidence(test), "mean": np.nan, "lo": np.nan,
               "hi": np.nan, "covers": "", "n": np.nan, "need": np.nan,
               "clear_wins": np.nan, "clear_losses": np.nan}
        if test.kind == "count":
            per = scenario_differences(test, ev)
            row.update(n=len(per), need=test.need,
                       clear_wins=int((per["verdict"] == HELD).sum()),
                       clear_losses=int((per["verdict"] == NOT_HELD).sum()),
                       covers=per["covers"].iloc[0],
                       verdict=count_verdict(per["verdict"], test.need))
        else:
            s = (contrast_summary if test.kind == "contrast" else loss_summary)(
                test, ev).iloc[0]
            row.update(mean=s["mean"], lo=s["lo"], hi=s["hi"], covers=s["covers"],
                       verdict=interval_verdict(s["lo"], s["hi"],
                                                better=test.better))
        rows.append(row)
    return pd.DataFrame(rows)


def claim_verdicts(tests: pd.DataFrame, *, by: str = "claim") -> pd.DataFrame:
    """Rule 3: one verdict per claim (or per part of a claim).

    Parameters
    ----------
    tests : DataFrame
        From :func:`evaluate_tests`.
    by : {"claim", "part"}
        One row per claim, or per claim and part.

    Returns
    -------
    DataFrame
        ``claim`` (and ``part``), ``statement, source, tests, verdict``.
    """
    if by not in ("claim", "part"):
        raise ValueError(f"by must be 'claim' or 'part'; got {by!r}")
    keys = ["claim"] if by == "claim" else ["claim", "part"]
    rows = []
    for key, g in tests.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        claim = CLAIMS[key[0]]
        rows.append({**dict(zip(keys, key)), "statement": claim.statement,
                     "source": claim.source, "tests": len(g),
                     "verdict": combine_verdicts(g["verdict"])})
    return pd.DataFrame(rows)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def describe_result(row: Mapping) -> str:
    """One test's result in words: the counts, or the difference and interval.

    Parameters
    ----------
    row : mapping
        A row of :func:`evaluate_tests`.

    Returns
    -------
    str
    """
    if row["kind"] == "count":
        return (f"{_plural(int(row['clear_wins']), 'clear win')} and "
                f"{_plural(int(row['clear_losses']), 'clear loss', 'clear losses')}"
                f" in {_plural(int(row['n']), 'scenario')} (needs "
                f"{int(row['need'])} clear wins)")
    scale, unit = (100.0, " points") if row["kind"] == "contrast" else (1.0, "")
    text = format_interval(row["mean"], row["lo"], row["hi"], scale=scale,
                           digits=3)
    return text.replace(" ", f"{unit} ", 1) if unit else text


def _signed(x: float, digits: int = 3) -> str:
    # Signed, with ``digits`` decimals; a non-zero value that would round to
    # zero is written in scientific notation, so that an interval end just
    # off zero does not read as zero.
    if x == 0 or abs(x) >= 0.5 * 10.0 ** -digits:
        return f"{x:+.{digits}f}"
    return f"{x:+.1e}"


def format_interval(mean: float, lo: float, hi: float, *, scale: float = 100.0,
                    digits: int = 2) -> str:
    """A difference and its interval as text, ``"+1.23 [+0.45, +2.01]"``.

    Values are multiplied by ``scale`` (100: AUC points). An interval end that
    would round to zero keeps one significant digit instead. NaN ends give
    ``"(no interval)"``.
    """
    mean, lo, hi = (scale * float(v) for v in (mean, lo, hi))
    if math.isnan(lo) or math.isnan(hi):
        return f"{_signed(mean, digits)} (no interval)"
    return (f"{_signed(mean, digits)} [{_signed(lo, digits)}, "
            f"{_signed(hi, digits)}]")


VERDICT_PHRASES = {HELD: "held", NOT_HELD: "did not hold",
                   INCONCLUSIVE: "was inconclusive"}


def verdict_phrase(verdict: str) -> str:
    """The verdict as a predicate: "held", "did not hold", "was inconclusive".

    Raises
    ------
    ValueError
        On an unknown verdict.
    """
    _check_verdicts([verdict], "verdict")
    return VERDICT_PHRASES[verdict]


def claim_tests_markdown(tests: Iterable[ClaimTest] = CLAIM_TESTS) -> str:
    """The tests as a Markdown list: claim, part, rule and what is compared."""
    rule = {"count": "rule 2", "contrast": "rule 1", "loss": "rule 1"}
    return "\n".join(
        f"- **{t.claim}, {t.part}** ({rule[t.kind]}): {t.description}; "
        f"`{t.model}` against `{t.reference}` in the `{t.experiment}` "
        "experiment." for t in tests)
