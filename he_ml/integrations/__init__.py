"""Optional integrations: ``he_ml.integrations.torch`` (PyTorch, extra ``torch``) and
``he_ml.integrations.flower`` (Flower, extra ``flower``). Each imports its framework lazily and
says which extra to install when it is missing."""
