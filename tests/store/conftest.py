"""Store tests use a real SeaweedFS server (see tests/conftest_s3.py)."""

from tests.conftest_s3 import s3_out, seaweedfs  # noqa: F401  (fixtures)
