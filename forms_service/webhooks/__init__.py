"""Webhooks (issue 13, « other systems »): each transition of a request sent, signed, to
``WEBHOOK_URL``.

- ``models``: ``WebhookEvent`` (one transition to tell: its JSON body, fixed once) and
  ``WebhookDelivery`` (the delivery log: one row per HTTP attempt; migration 0010);
- ``events``: the one hook, on the ORM flush, where a request's state changes (whatever
  the step or the module that changed it) → an event row in the same transaction, queued
  once the transaction commits;
- ``signing``: ``X-RSA-Signature: sha256=<HMAC-SHA256 of "<timestamp>.<body>">``;
- ``delivery``: the queue task (``webhooks.deliver``, retried with backoff: what a worker runs);
- ``dispatch``: events handed to the queue, and replay (a new delivery of the same event,
  audited);
- ``sweep``: the periodic job that queues again the events that never reached the queue
  (``queued_at``, migration 0014);
- ``log``: the delivery log read back (API ``/api/v1/webhooks/events``, page
  ``/administration/webhooks``).

See docs/circuit.md (« Webhooks ») for the payload and how a receiver verifies it.
"""
