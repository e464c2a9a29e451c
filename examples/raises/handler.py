"""A handler that fails: the caller gets Lambda's error shape, the platform carries on."""


class PaymentDeclined(Exception):
    pass


def handler(event, context):
    amount = event.get("amount", 0)
    if amount > 100:
        raise PaymentDeclined(f"amount {amount} is over the card's limit of 100")
    return {"charged": amount}
