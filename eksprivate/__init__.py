"""eksprivate: private Amazon EKS clusters whose nodes have no internet access."""

__version__ = "0.1.0"
