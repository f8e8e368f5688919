"""Files on any Hadoop file system (``hdfs://``, ``s3a://``, ``abfss://``, ``file://``, ``viewfs://``).

Copies go through the JVM's ``org.apache.hadoop.fs.FileSystem``, the same code Spark reads and
writes DataFrames with, so a URI that works for ``spark.read.parquet`` works here too; Python's
``open`` is only used for paths on this machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any

from ._scratch import scratch_folder

# Scheme -> the Maven package that provides its Hadoop file system.
_PACKAGES = {
    "s3a": "org.apache.hadoop:hadoop-aws:{hadoop}",
    "s3": "org.apache.hadoop:hadoop-aws:{hadoop} (and use s3a://)",
    "s3n": "org.apache.hadoop:hadoop-aws:{hadoop} (and use s3a://)",
    "abfs": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "abfss": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "wasb": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "wasbs": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "gs": "com.google.cloud.bigdataoss:gcs-connector:hadoop3-2.2.26",
    "oss": "org.apache.hadoop:hadoop-aliyun:{hadoop}",
}


def scheme_of(uri: str) -> str:
    """The URI's scheme, ``""`` for a plain path.

    >>> scheme_of("s3a://bucket/models"), scheme_of("/tmp/x"), scheme_of("file:/tmp/x")
    ('s3a', '', 'file')
    """
    head, sep, _ = str(uri).partition(":")
    if not sep or "/" in head or len(head) < 2:  # C:\\ is a Windows drive, not a scheme
        return ""
    return head.lower()


def is_local(uri: str) -> bool:
    """Whether ``uri`` names a path on this machine (no scheme, or ``file:``)."""
    return scheme_of(uri) in ("", "file")


def local_path(uri: str) -> str:
    """The path on this machine of a local ``uri`` (``file:///x`` -> ``/x``)."""
    if scheme_of(uri) == "file":
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(str(uri)).path)
    return str(uri)


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended, ``/``-separated as Hadoop paths are.

    >>> join("s3a://bucket/model/", "files", "weights", "net.onnx")
    's3a://bucket/model/files/weights/net.onnx'
    """
    return "/".join([str(uri).rstrip("/"), *parts])


def _hadoop(spark: Any, uri: str) -> tuple[Any, Any]:
    """The ``(FileSystem, Path)`` of ``uri``; ValueError naming the missing package if none."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        raise ValueError(
            f"Model files cannot be copied to or from {uri} through a Spark Connect session, which has no "
            "Hadoop FileSystem on the client. Expected a local or mounted path with Connect. Save to a "
            "path on this machine (or a mount such as /dbfs or /Volumes), or use a classic session."
        )
    context = getattr(spark, "sparkContext", spark)
    jvm = context._jvm
    path = jvm.org.apache.hadoop.fs.Path(str(uri))
    try:
        return path.getFileSystem(context._jsc.hadoopConfiguration()), path
    except Exception as error:  # py4j wraps the JVM's error
        text = str(error)
        if "ClassNotFoundException" in text or "No FileSystem for scheme" in text:
            raise missing_file_system_error(uri, jvm.org.apache.hadoop.util.VersionInfo.getVersion()) from None
        raise


def missing_file_system_error(uri: str, hadoop_version: str) -> ValueError:
    scheme = scheme_of(uri)
    package = _PACKAGES.get(scheme, "the Hadoop file system package for {scheme}://").format(
        hadoop=hadoop_version, scheme=scheme
    )
    return ValueError(
        f"No Hadoop file system is configured for {scheme}:// URIs (received {uri!r}). Expected a scheme "
        f"whose file system is on Spark's classpath. To fix it, add {package} to the session, e.g. "
        f"deepframes.session(**{{'spark.jars.packages': '{package.split(' ')[0]}'}}), with its credentials "
        "settings (spark.hadoop.fs.<scheme>.*)."
    )


def check_file_system(spark: Any, uri: str) -> None:
    """Raise ValueError now, before any work, when no file system serves ``uri``'s scheme."""
    if not is_local(uri):
        _hadoop(spark, uri)


def exists(spark: Any, uri: str) -> bool:
    """Whether ``uri`` exists (a local path is checked without Spark)."""
    if is_local(uri):
        return os.path.exists(local_path(uri))
    file_system, path = _hadoop(spark, uri)
    return bool(file_system.exists(path))


def maybe_present(paths: Iterable[str]) -> list[str]:
    """``paths`` without the local ones that do not exist (URIs are kept: they are checked when
    read), each once, in order.

    >>> maybe_present(["/no/such/file.jpg", "hdfs://host/a.jpg", "/", "/"])
    ['hdfs://host/a.jpg', '/']
    """
    return [path for path in dict.fromkeys(paths) if not is_local(path) or os.path.exists(local_path(path))]


def copy_to(spark: Any, source: str, uri: str) -> None:
    """Copy a local file or folder to ``uri`` (replacing what is there)."""
    if is_local(uri):
        target = local_path(uri)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
        return
    file_system, path = _hadoop(spark, uri)
    jvm = getattr(spark, "sparkContext", spark)._jvm
    file_system.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(os.path.abspath(source)), path)


def copy_from(spark: Any, uri: str, target: str) -> str:
    """Copy the file or folder at ``uri`` to the local path ``target``; returns ``target``."""
    if is_local(uri):
        return local_path(uri)
    file_system, path = _hadoop(spark, uri)
    if not file_system.exists(path):
        raise FileNotFoundError(f"{uri} does not exist. Check the URI, or save the model there first.")
    jvm = getattr(spark, "sparkContext", spark)._jvm
    shutil.rmtree(target, ignore_errors=True) if os.path.isdir(target) else None
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    # The raw local file system writes no .crc files beside the copy.
    file_system.copyToLocalFile(False, path, jvm.org.apache.hadoop.fs.Path(os.path.abspath(target)), True)
    return target


def delete(spark: Any, uri: str) -> None:
    """Remove the file or folder at ``uri`` (nothing when there is none)."""
    if is_local(uri):
        path = local_path(uri)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else None
        if os.path.lexists(path):
            os.remove(path)
        return
    file_system, path = _hadoop(spark, uri)
    file_system.delete(path, True)


def rename(spark: Any, source: str, target: str) -> None:
    """Move ``source`` to ``target`` on the same file system (``target`` must not exist)."""
    if is_local(source) and is_local(target):
        os.rename(local_path(source), local_path(target))
        return
    file_system, path = _hadoop(spark, source)
    if not file_system.rename(path, _hadoop(spark, target)[1]):
        raise OSError(f"Could not move {source} to {target}; check that {target} does not exist and that "
                      "both are on one file system.")


def write_text(spark: Any, uri: str, text: str) -> None:
    """Write a small text file at ``uri`` (replacing what is there)."""
    if is_local(uri):
        target = local_path(uri)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "w") as handle:
            handle.write(text)
        return
    source = os.path.join(scratch_folder(), f"text-{os.getpid()}-{id(text)}")
    with open(source, "w") as handle:
        handle.write(text)
    try:
        copy_to(spark, source, uri)
    finally:
        os.remove(source)


def read_text(spark: Any, uri: str) -> str:
    """The text of the small file at ``uri``."""
    with open(local_copy(spark, uri)) as handle:
        return handle.read()


def local_copy(spark: Any, uri: str) -> str:
    """A path on this machine holding ``uri``'s file: the path itself when local, else a download
    into a folder of this process's own, removed when it exits."""
    if is_local(uri):
        return local_path(uri)
    folder = scratch_folder()
    return copy_from(spark, uri, os.path.join(folder, str(uri).rstrip("/").rsplit("/", 1)[-1]))
