"""The top layer: runs of agents on envs. The only part of ``prompt_gym`` that imports ``prompt_gym.agents``.

* :mod:`prompt_gym.runs.pipeline`: :class:`~prompt_gym.runs.pipeline.Run`, the one pipeline
  (load, start or resume, learn, select on validation, test) behind both commands;
* :mod:`prompt_gym.runs.train`: ``prompt-gym train`` (one run, its folder, ``run.json``, the report);
* :mod:`prompt_gym.runs.compare`: ``prompt-gym compare`` (agents x seeds under one budget) and
  :mod:`prompt_gym.runs.report` (its tables and curves);
* :mod:`prompt_gym.runs.cli`: the ``prompt-gym`` command; its ``train`` flags are generated from the
  config dataclasses (:mod:`prompt_gym.runs.flags`).

``import prompt_gym`` does not import this package (it stays free of torch).
"""
