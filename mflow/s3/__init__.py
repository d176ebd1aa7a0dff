"""`from mflow import S3`: many objects to and from S3 at once, for the data steps read and
write, with Metaflow's names; see man/mflow-s3.7.

    with S3(run=self) as s3:                     # inside a step: under this run's prefix
        s3.put("model.bin", blob)
    with S3(s3root="s3://bucket/datasets") as s3:
        frames = [pandas.read_csv(obj.path) for obj in s3.get_many(["a.csv", "b.csv"])]

Importing this is cheap: boto3 loads on the first request.
"""

from .client import S3
from .objects import RangeInfo, S3GetObject, S3Object, S3PutObject

__all__ = ["RangeInfo", "S3", "S3GetObject", "S3Object", "S3PutObject"]
