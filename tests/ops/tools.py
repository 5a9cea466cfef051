"""Finding the real tools the operations tests run, and PromQL helpers.

A missing tool skips its test locally with the reason and what to install; in CI (``CI=true``)
it fails the test instead, so a CI machine without the tools can never pass by skipping.
"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.ci import in_ci

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GRAFANA = REPO / "grafana"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = GRAFANA / "dashboards" / "stopgate.json"

APT = "apt-get install -y prometheus"
PIP = "pip install kubernetes-validate==1.37.0 check-jsonschema==0.39.0 dockerfile-parse==2.0.1"


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI): a tool this test needs is not installed."""
    if in_ci():
        pytest.fail(f"{reason} (CI must install it)", pytrace=False)
    pytest.skip(reason)


def tool(name: str, install: str = APT) -> str:
    """The path of executable ``name`` (PATH, then /usr/bin)."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        unavailable(f"{name} is not installed: {install}")
    assert found is not None
    return found


def module(name: str, install: str = PIP) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python package {name} is not installed: {install}")
        raise


# --- PromQL --------------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

_WORDS = (
    "by without on ignoring group_left group_right bool offset and or unless atan2 inf nan "
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio abs absent absent_over_time ceil changes clamp clamp_max clamp_min "
    "day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg "
    "histogram_count histogram_fraction histogram_quantile histogram_stddev "
    "histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta "
    "increase irate label_join label_replace ln log2 log10 minute month predict_linear "
    "rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt "
    "time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time "
    "count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time "
    "present_over_time mad_over_time acos acosh asin asinh atan atanh cos cosh sin sinh "
    "tan tanh deg rad pi"
)
_KEYWORDS = frozenset(_WORDS.split())


def substitute_grafana_variables(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: every identifier left once strings, label
    matchers, ranges, grouping label lists, durations after ``offset``, numbers, keywords and
    function names are taken out. An unknown function would show up as a "metric" here and
    fail the comparison loudly rather than hide a name."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*", " ", text)
    names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n.lower() not in _KEYWORDS}
