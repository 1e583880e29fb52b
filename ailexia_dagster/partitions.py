"""Partycje dynamiczne: jedna partycja na zadanie, klucz = ``str(id_task)``."""

from dagster import DynamicPartitionsDefinition

from ailexia_dagster.constants import PARTITION_NAME

task_partitions = DynamicPartitionsDefinition(name=PARTITION_NAME)
