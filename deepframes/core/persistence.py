"""Save and load for the stages and estimators: Params as pyspark.ml's JSON metadata, model files
and pickled functions beside it under ``path/files/``, so a stage saves anywhere Hadoop writes
(local, ``hdfs://``, ``s3a://``) and loads as the class it was saved as.

Params hold plain values: a file Param holds a path (the file is copied with the stage), and an
estimator's function Params (a model factory, a loss) are pickled with cloudpickle, as they are
shipped to the ranks, and restored on load. Loading unpickles them: load only folders you trust.
"""

from __future__ import annotations

import importlib
import os
import pickle
from typing import Any

from pyspark.ml.param import Params
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter

from .. import storage
from .._scratch import scratch_folder


def pickled(value: Any, what: str, stage: str) -> bytes:
    """``value`` pickled with cloudpickle, or a one-line error saying how to make it picklable."""
    from pyspark import cloudpickle

    try:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - any pickling failure is the user's to fix
        raise TypeError(
            f"{stage}: the {what} must be picklable to reach the executors; received "
            f"{getattr(value, '__name__', type(value).__name__)!r}, which cannot be pickled "
            f"({type(error).__name__}: {error}). Define it at module level and create locks, sessions "
            "and open files inside it."
        ) from None


class ModelFileWriter(MLWriter):
    """Saves Params as JSON, copies the stage's model files under ``path/files/`` and pickles its
    function Params there."""

    def __init__(self, instance: Params) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        instance = self.instance
        # File names go into the metadata, so loading never has to list a (remote) folder.
        files = {}
        for name in instance.file_params:
            value = instance.getOrDefault(name) if instance.isDefined(name) else None
            if isinstance(value, str) and os.path.exists(value):
                files[name] = (value, os.path.basename(value.rstrip("/")))
        functions = {name: instance.getOrDefault(name) for name in instance.pickled_params
                     if instance.isSet(name) and callable(instance.getOrDefault(name))}
        storage.check_file_system(self.sparkSession, path)
        json_params = {param.name: value for param, value in instance._paramMap.items() if param.name not in functions}
        extra = {"files": {name: base for name, (_, base) in files.items()},
                 "pickled": {name: f"{name}.pkl" for name in functions}}
        # The session, not its SparkContext: a Connect session has none.
        DefaultParamsWriter.saveMetadata(instance, path, self.sparkSession, extraMetadata=extra, paramMap=json_params)
        for name, (value, base) in files.items():
            storage.copy_to(self.sparkSession, value, storage.join(path, "files", name, base))
        for name, value in functions.items():
            local = os.path.join(scratch_folder(), f"{name}.pkl")
            with open(local, "wb") as handle:
                handle.write(pickled(value, name, type(instance).__name__))
            storage.copy_to(self.sparkSession, local, storage.join(path, "files", name, f"{name}.pkl"))


class ModelFileReader(MLReader):
    """Loads a stage saved by ModelFileWriter as the class it was saved as (a subclass of the
    class ``load`` was called on), its file Params pointing at the saved copies."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Params:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        instance = saved_class(metadata["class"], self.cls, path)()
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._resetUid(metadata["uid"])
        files = metadata.get("files")
        for name in instance.file_params:
            saved = files.get(name) if files is not None else _listed(path, name)
            if saved:
                uri = storage.join(path, "files", name, saved)
                instance._set(**{name: storage.local_copy(self.sparkSession, uri)})
        for name, base in (metadata.get("pickled") or {}).items():
            with open(storage.local_copy(self.sparkSession, storage.join(path, "files", name, base)), "rb") as handle:
                instance._set(**{name: pickle.loads(handle.read())})
        return instance


def saved_class(name: str, base: type, path: str) -> type:
    """The class a stage was saved as (``module.Class`` in its metadata), if it is ``base`` or a
    subclass of it: ``ModelTransformer.load`` of a saved ``KerasModel`` gives a ``KerasModel``."""
    module, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"{path} holds a stage of class {name}, which this version cannot import. "
                         f"Load it with the deepframes version that saved it.") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{path} holds a {class_name}, not a {base.__name__}. Load it with "
                         f"{class_name}.load(path), or pyspark.ml's DefaultParamsReader.loadParamsInstance.")
    return cls


def _listed(path: str, name: str) -> str | None:
    """The file saved for ``name`` by a version that did not record file names (local saves)."""
    folder = os.path.join(storage.local_path(path), "files", name)
    return os.listdir(folder)[0] if os.path.isdir(folder) and os.listdir(folder) else None


class ModelFileStage(MLReadable, MLWritable):
    """Mixin: save/load that carry the files named in ``file_params`` and the functions held by
    ``pickled_params`` with the stage."""

    file_params: tuple[str, ...] = ()
    pickled_params: tuple[str, ...] = ()

    def write(self) -> MLWriter:
        return ModelFileWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return ModelFileReader(cls)


__all__ = ["ModelFileReader", "ModelFileStage", "ModelFileWriter", "pickled", "saved_class"]
