"""Jedyny obiekt ``Definitions`` projektu (ładowany przez ``workspace.yaml``)."""

from dagster import Definitions

from ailexia_dagster.assets import ALL_ASSETS
from ailexia_dagster.jobs import ALL_JOBS
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.sensors import ALL_SENSORS

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    resources={"ailexia": AilexiaResource()},
)
