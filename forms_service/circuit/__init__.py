"""The fiche de liaison's circuit (issue 12): requests (demandes), their avis, routing to
the correspondant and back to the référent, and the e-mails that tell them.

``states.yaml`` (the state machine as data) · ``machine`` (reads it) · ``models`` (rows,
migration 0006) · ``service`` (submit, correct, record an avis) · ``routing`` (who receives
a request) · ``notify`` (e-mail: SMTP or ``var/outbox/*.eml``) · ``queries`` (filtered lists).
"""
