"""Asset ``ai_quality``: wyniki ewaluacji modeli w czasie (obserwacje, partycja = ``ai_model.name``).

``python ai.py --eval`` zapisuje każdy przebieg w tabeli ``ai_eval`` i jako obserwację tego assetu,
więc UI Dagstera rysuje F0.5, chrF i koszt modelu w czasie (zakładka *Plots* partycji).
"""

from typing import Any

from dagster import AssetObservation, AssetSpec, DagsterInstance, DynamicPartitionsDefinition

from ailexia_dagster.constants import AI_QUALITY, MODEL_PARTITION_NAME

model_partitions = DynamicPartitionsDefinition(name=MODEL_PARTITION_NAME)

ai_quality = AssetSpec(
    AI_QUALITY,
    group_name="ai",
    partitions_def=model_partitions,
    kinds={"python"},
    description=(
        "Jakość modeli na zestawach ewaluacyjnych (python ai.py --eval): F0.5, precyzja, czułość, chrF, "
        "koszt i opóźnienie każdego przebiegu jako obserwacja partycji modelu (tabela ai_eval)."
    ),
)

# Liczby przebiegu, które UI rysuje w czasie (metadane obserwacji); None pomijane.
_FIGURES = ("f05", "precision", "recall", "chrf", "exact_match", "unchanged_changed_rate", "cost_usd",
            "latency_p50_s", "latency_p95_s", "items", "failed", "tp", "fp", "fn")  # fmt: skip


def observe_eval(instance: DagsterInstance, report: dict[str, Any]) -> int:
    """Zapisuje wyniki raportu ``ai.py --eval`` jako obserwacje ``ai_quality`` (jedna na model).

    Returns:
        Liczba zapisanych obserwacji.
    """
    models = sorted({result["model"] for result in report["results"]})
    missing = [name for name in models if not instance.has_dynamic_partition(MODEL_PARTITION_NAME, name)]
    if missing:
        instance.add_dynamic_partitions(MODEL_PARTITION_NAME, missing)
    for result in report["results"]:
        metadata: dict[str, Any] = {
            key: float(result[key]) if isinstance(result[key], float) else result[key]
            for key in _FIGURES
            if result.get(key) is not None
        }
        metadata["set"] = report["set"]
        metadata["prompt_version"] = result.get("prompt_version") or ""
        if result.get("id_ai_eval") is not None:
            metadata["id_ai_eval"] = int(result["id_ai_eval"])
        instance.report_runless_asset_event(
            AssetObservation(
                asset_key=AI_QUALITY,
                partition=result["model"],
                description=f"eval {report['set']}: {result['model']}",
                metadata=metadata,
            )
        )
    return len(report["results"])
