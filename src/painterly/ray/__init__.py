"""Batch stylization past one machine, on Ray Data (``pip install 'painterly[ray]'``).

* :func:`stylize_dataset` maps a Ray Dataset of images (the ``bytes`` column that
  ``ray.data.read_binary_files`` gives, or the ``image`` column of ``ray.data.read_images``)
  through a pool of actors (:class:`StylizeActor`): each loads the model and computes the style
  statistics once, then stylizes batch after batch through the method's batched API
  (``stylize_tensor``). An image that cannot be read or stylized becomes a row with an
  ``error`` and the job goes on.
* :func:`stylize_path` is ``painterly stylize IN --style S -o OUT --ray [ADDRESS]``: ``IN`` and
  ``OUT`` are local folders or anything pyarrow's file systems open (``s3://``, ``gs://``, ...);
  results are named as folder mode names them (:mod:`painterly.batch`), existing ones are
  skipped unless ``overwrite``, and failures are reported per image.

Actors take one GPU each where the cluster has GPUs; on CPUs, one actor per node runs the
network on the node's cores (torch threads) while holding one logical CPU, so Ray's read and
write tasks still run beside it. Going from one machine to a cluster is the address:
``--ray auto`` (or ``ray://head:10001``). Model files (``--decoder``, ``--model``) and style
images are read by the driver and shipped to the actors, so the nodes need painterly installed
but no shared file system.

Modules, read top to bottom: :mod:`~painterly.ray.cluster` (reaching Ray, sizing the actor
pool), :mod:`~painterly.ray.actors` (what is shipped to the actors, the actor),
:mod:`~painterly.ray.dataset` (:func:`stylize_dataset`), :mod:`~painterly.ray.storage` (file
systems, listings, names, writing) and :mod:`~painterly.ray.paths` (:func:`stylize_path`, the CLI).
"""

from __future__ import annotations

from .actors import StylizeActor
from .cluster import ActorPlan, connect, plan_actors, require_ray
from .dataset import DEFAULT_BATCH_SIZE, stylize_dataset
from .paths import stylize_cli as stylize_cli  # painterly.cli.stylize calls it for --ray
from .paths import stylize_path
from .storage import result_names

__all__ = ["DEFAULT_BATCH_SIZE", "ActorPlan", "StylizeActor", "connect", "plan_actors", "require_ray",
           "result_names", "stylize_dataset", "stylize_path"]
