"""orgcontain's containment engine: acts inside ONE member account and region, given boto3 clients.

Public API (imported from the submodules, so that importing ``spoke`` stays cheap):
``spoke.clients.SpokeClients``, ``spoke.groups.GroupCache``, ``spoke.describe.describe``,
``spoke.isolate.isolate``, ``spoke.release.release``, ``spoke.permissions.STEP_ACTIONS`` /
``required_actions``, ``spoke.errors``; models in ``spoke.models``. See docs/containment.md.
"""
