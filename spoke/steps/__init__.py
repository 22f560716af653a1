"""Containment steps: small named units, each declaring the IAM actions it calls.

Like Cloud Custodian actions, every step class names the API actions its code may call on the
isolate path (``actions``) and on the release path (``release_actions``);
:mod:`spoke.permissions` imports every step module and collects them, so that the spoke role's
policy can be held against what the code needs.
"""
