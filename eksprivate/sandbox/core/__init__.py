"""The sandbox's core: what every behaviour family builds on, and nothing that is a behaviour.

* `patching`: `Patcher` (changes to moto's classes and tables, undone by `uninstall`) and the named events one
  family announces and another handles (botocore's event handlers, in small);
* `clock`: `Timing` (real-world durations and the time scale) and the monotonic clock every lifecycle is
  measured on, with `Life`, a resource's phase read from that clock;
* `updates` and `versions`: the state two EKS families share (EKS's asynchronous updates; the Kubernetes
  versions EKS offers), so that no family imports another.

No module here imports a behaviour family: the families import the core, and `sandbox.families` lists them.
moto is imported inside functions only: importing the core stays cheap.
"""
