"""UniSim models: CLIP-family encoders as lmms-eval models, and as metrics called from Python
(``create_metric``, ``list_presets``)."""

__all__ = ["create_metric", "list_presets"]


def __getattr__(name: str):
    # lazily, so that importing the lmms-eval plugin does not load torch and transformers
    if name == "create_metric":
        from unisim_models.metric import create_metric

        return create_metric
    if name == "list_presets":
        from unisim_models.presets import list_presets

        return list_presets
    raise AttributeError(name)
