"""Obtain the real external inputs the tests use, into the user's cache (never at run time).

- CMS NanoAOD files shipped in the coffea source archive on PyPI (``tests/samples/``).
- Apache Kafka broker jars (``org.apache.kafka:kafka_2.13``) resolved with Maven.
- The Keycloak server (``org.keycloak:keycloak-quarkus-dist``, a tar.gz on Maven Central),
  the OpenID Connect provider of the single-sign-on tests.

``python -m tests.support.fetch`` fetches all three; the fixtures call the same functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hotline"
COFFEA_VERSION = "2026.9.0"
NANO_FILES = ("nano_dimuon.root", "nano_dy.root", "nano_tt_v15.root", "nano_dy_empty.root",
              "missing_luminosityBlock.root")
KAFKA_VERSION = "3.9.1"
KEYCLOAK_VERSION = "26.5.6"  # runs on Java 17

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>hotline</groupId><artifactId>kafka-broker</artifactId><version>1</version>
<packaging>pom</packaging><dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
<version>{version}</version></dependency>
<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
<version>1.7.36</version></dependency>
</dependencies></project>
"""


def cms_samples() -> Path:
    """Folder holding the coffea NanoAOD test files (downloaded once with pip)."""
    dest = CACHE / "coffea" / "samples"
    if all((dest / f).exists() for f in NANO_FILES):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"coffea=={COFFEA_VERSION}", "-d", tmp],
            check=True,
        )
        sdist = next(Path(tmp).glob("coffea-*.tar.gz"))
        with tarfile.open(sdist) as tf:
            for m in tf.getmembers():
                name = Path(m.name).name
                if "/tests/samples/" in m.name and name in NANO_FILES:
                    with tf.extractfile(m) as src:  # type: ignore[union-attr]
                        (dest / name).write_bytes(src.read())
    return dest


def kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Folder of the Kafka broker jars (resolved once with Maven)."""
    dest = CACHE / f"kafka-{version}"
    if (dest / f"kafka_2.13-{version}.jar").exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(POM.format(version=version))
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={dest}"],
            cwd=tmp,
            check=True,
        )
    return dest


def keycloak_dist(version: str = KEYCLOAK_VERSION) -> Path:
    """Folder of the Keycloak server distribution (fetched once with Maven, unpacked)."""
    dest = CACHE / f"keycloak-{version}"
    if (dest / "bin" / "kc.sh").exists():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy",
             f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:tar.gz",
             f"-DoutputDirectory={tmp}"],
            cwd=tmp,
            check=True,
        )
        part = Path(tempfile.mkdtemp(dir=CACHE, prefix=".keycloak-"))
        with tarfile.open(next(Path(tmp).glob("keycloak-quarkus-dist-*.tar.gz"))) as tf:
            tf.extractall(part, filter="tar")
        inner = next(part.iterdir())
        if not dest.exists():
            inner.rename(dest)
    return dest


if __name__ == "__main__":
    print("CMS NanoAOD samples:", cms_samples())
    print("Kafka jars:", kafka_jars())
    print("Keycloak:", keycloak_dist())
