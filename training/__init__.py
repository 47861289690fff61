"""Sample production, training, evaluation and studies (the ``train`` and ``sim`` extras).

- ``training.processes``: registry of physics processes (Pythia8 settings, stream filter).
- ``training.process_files``: processes and event faults defined in TOML: search path, loader.
- ``training.generate``: Pythia8 + fast detector simulation -> archived runs.
- ``training.recipe``: the sample recipe (``samples.toml``): parse, compare with the cache, make.
- ``training.reproduce``: ``hotline train --reproduce``: retrain from a model card, compare.
- ``training.provenance``: code version (package, git commit, source hash) for model cards.
- ``training.validate``: validation plots of generated samples.
- ``training.demo_run``: how the bundled demo run is made, and the command that remakes it.
- ``training.train``: training configurations, the training loop, the ``hotline train`` driver.
- ``training.evaluate``: ROC, AUC, TPR at fixed FPR on signals and detector faults.
- ``training.report``: PNG plots and the model comparison table.
- ``training.attribution``: the paired (counterfactual) fault-attribution study.
- ``training.dqm``: conv-AE training, calibration and evaluation for DQM occupancy maps.
"""

__all__: list[str] = []
