"""Beneficiaries of the RSA and the référent named for each ("désignation du référent").

- ``models``: ``Beneficiary`` (unique on CAF number + birth date: the two adults of a
  household share one CAF number);
- ``importer``: the CSV / JSON import from the département's system, line by line report;
- ``api``: ``/api/v1/beneficiaries`` (list, one, import), every read through ``forms_service.access``;
- ``cli``: ``forms-service beneficiaries import FILE``.
"""
