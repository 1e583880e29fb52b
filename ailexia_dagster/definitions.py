"""Jedyny obiekt ``Definitions`` projektu (ładowany przez ``workspace.yaml``).

Executor w procesie runu (``in_process_executor``): runy to krótkie łańcuchy 1-2 assetów jednej
partycji, bez równoległych kroków; osobny proces na krok (domyślny executor wieloprocesowy)
kosztował ~5 s startu na krok i nic nie dawał. Skalowanie idzie przez wiele runów naraz
(kolejka, run launcher), nie przez kroki jednego runu.
"""

from dagster import Definitions, in_process_executor

from ailexia_dagster.assets import ALL_ASSETS
from ailexia_dagster.jobs import ALL_JOBS
from ailexia_dagster.quality import ai_quality
from ailexia_dagster.resources import AilexiaResource
from ailexia_dagster.sensors import ALL_SENSORS

defs = Definitions(
    assets=[*ALL_ASSETS, ai_quality],
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    resources={"ailexia": AilexiaResource()},
    executor=in_process_executor,
)
