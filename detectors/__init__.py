"""What a detector sees.

- ``detectors.spec``: the event feature spec (object types, multiplicities, cuts) as data.
- ``detectors.features``: NanoAOD-style jagged collections -> fixed feature matrix, vectorised.
"""

from hotline.detectors.features import FeatureMatrix, extract_features
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec

__all__ = ["DEFAULT_SPEC", "FeatureMatrix", "FeatureSpec", "ObjectSpec", "extract_features"]
