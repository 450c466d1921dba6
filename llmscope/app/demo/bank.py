"""The demo's question bank: what customers ask Larkspur Home's support assistant, by topic.

Larkspur Home is a fictional online shop for home goods with a paid "Larkspur Plus" membership.
Everything here was written for llmscope's demo. Each topic has many phrasings, some with slots
(``{order}``, ``{item}``, ...) filled at random, so the replayed traffic reads like real users
and no two weeks look alike; and the words a customer uses when an answer disappoints them
(feedback tags and comments).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["TOPICS", "Topic", "ask", "comment_for"]


@dataclass(frozen=True)
class Topic:
    key: str
    label: str  # how the demo talks about it
    template: str  # the app's prompt template for this kind of question
    weight: float  # share of everyday traffic (relative)
    down_rate: float  # how often a rated answer gets a thumbs-down on an ordinary day
    questions: tuple[str, ...]
    context: tuple[str, ...] = ()  # what customers say before (or after) the question
    down_tags: tuple[str, ...] = ("unhelpful",)
    down_comments: tuple[str, ...] = ()


SLOTS: dict[str, tuple[str, ...]] = {
    # Half the time customers just say "the item".
    "item": ("item",) * 12
    + (
        "linen duvet cover",
        "oak side table",
        "ceramic mug set",
        "brass desk lamp",
        "wool throw",
        "cast-iron skillet",
        "bath towel set",
        "standing mirror",
        "rattan laundry basket",
        "velvet cushion covers",
        "bamboo cutting board",
        "glass storage jars",
    ),
    "device": ("iPhone 13", "iPhone 15", "Pixel 7", "Galaxy S22", "iPad", "Android tablet"),
    "code": ("SPRING20", "WELCOME10", "FREESHIP", "PLUS15", "HOME25", "FRIENDS5"),
    "days": ("2", "3", "4", "5", "6", "8", "10", "12"),
    "amount": ("$18.90", "$24.50", "$39.00", "$64.99", "$112.40", "$149.00", "$230.00"),
}

# Casual openings and closings real messages have; most messages have none.
OPENINGS = ("",) * 8 + ("Hi! ", "Hello! ", "Quick question: ", "Hey there. ", "Good morning. ")
CLOSINGS = ("",) * 8 + (" Thanks!", " Thank you.", " Please help.", " Thanks in advance.")

TOPICS: tuple[Topic, ...] = (
    Topic(
        key="login",
        label="signing in and passwords",
        template="account-help",
        weight=10,
        down_rate=0.08,
        context=(
            "I've been trying to get into my account all morning.",
            "I haven't used my Larkspur account since last year.",
            "I'm on my {device} and the website won't let me in.",
            "I want to check an order but I can't sign in.",
            "I tried three different passwords already.",
            "My partner set up the account with my email.",
            "It worked fine yesterday.",
            "I'm trying to log in from work.",
        ),
        questions=(
            "I forgot my password, how do I reset it?",
            "The password reset email never arrives.",
            "I can't log in to my account even with the right password.",
            "It says my account is locked after too many login attempts.",
            "How do I change my password?",
            "The reset link says it has expired.",
            "I'm stuck on the sign in page, it keeps reloading.",
            "Can I sign in with Google instead of a password?",
            "My login stopped working after I changed my email address.",
            "Why do I get logged out every time I close the app?",
            "I reset my password but the new one doesn't work either.",
            "How long does the account lock last after failed sign-ins?",
            "The login page says 'invalid credentials' but I'm sure they're right.",
            "I want to sign in on a new {device}, what password do I use?",
        ),
        down_tags=("unhelpful", "incorrect"),
        down_comments=(
            "I already tried the reset link, that's why I'm asking.",
            "Still can't get in.",
            "The email it talks about never arrives.",
        ),
    ),
    Topic(
        key="two_factor",
        label="two-factor authentication",
        template="account-help",
        weight=5,
        down_rate=0.10,
        context=(
            "I switched to a new {device} last week.",
            "My old phone broke and I had the authenticator on it.",
            "I'm travelling abroad at the moment.",
            "My bank told me to turn on extra security everywhere.",
            "I set up two-factor months ago and forgot about it.",
            "I'm locked out at the verification step.",
        ),
        questions=(
            "I lost my phone and can't get the two-factor code.",
            "How do I turn on two-factor authentication?",
            "My authenticator app shows a code but the site says it's wrong.",
            "I got a new {device}, how do I move my 2FA codes to it?",
            "Where are my 2FA backup codes?",
            "Can I get the verification code by text message instead of the app?",
            "I'm not receiving the SMS verification code.",
            "How do I switch off two-step verification?",
            "The 2FA code expires before I can type it in.",
            "I changed phone numbers and now I can't verify my login.",
        ),
        down_tags=("unhelpful",),
        down_comments=("I don't have the old phone any more.", "No mention of backup codes."),
    ),
    Topic(
        key="refunds",
        label="refunds",
        template="refund-policy",
        weight=9,
        down_rate=0.08,
        context=(
            "I sent my parcel back last week.",
            "The courier scanned my return {days} days ago.",
            "I paid {amount} by card for order {order}.",
            "The {item} didn't suit our living room so I returned it.",
            "I got an email saying my return was received.",
            "I paid with PayPal.",
            "This is my first time returning something to you.",
            "I need the money back before my card statement closes.",
        ),
        questions=(
            "When will I get my refund for order {order}?",
            "I returned the {item} {days} days ago and still no refund.",
            "How long do refunds take to show up on my card?",
            "Can I get a refund instead of store credit?",
            "My refund was only partial, why?",
            "Is shipping refunded if I send the {item} back?",
            "I cancelled order {order} before it shipped, where is my money?",
            "Do you refund to PayPal or only to cards?",
            "The refund status says processed but I don't see it on my statement.",
            "Can I still get a refund on the {item} I bought {days} weeks ago?",
            "How much of the {amount} will I get back?",
            "What is your refund policy for sale items?",
            "Am I eligible for a refund if the {item} was a gift?",
            "Why was my refund declined?",
        ),
        down_tags=("incorrect", "unhelpful"),
        down_comments=(
            "That's not what the refund page says.",
            "Didn't answer when I get my money.",
        ),
    ),
    Topic(
        key="returns",
        label="returning an item",
        template="refund-policy",
        weight=8,
        down_rate=0.08,
        context=(
            "The {item} isn't what I expected.",
            "I bought it as a gift and they already have one.",
            "It arrived {days} days ago.",
            "I've kept all the packaging.",
            "I ordered two sizes to compare.",
            "It's my first order with Larkspur.",
            "I don't have a printer at home.",
            "It's unused and still in the box.",
        ),
        questions=(
            "How do I return the {item}?",
            "Where do I get a return label?",
            "Can I return something I bought {days} weeks ago?",
            "How many days do I have to return an item?",
            "Can I exchange the {item} for a different colour?",
            "Do I need the original box to return the {item}?",
            "Can I drop my return off at a post office?",
            "Is there a fee for returning items?",
            "I want to return part of order {order}, not all of it.",
            "The {item} doesn't fit my space, can I send it back?",
            "Can I return a final sale item?",
            "How do I return a large item like the oak side table?",
        ),
        down_tags=("incorrect", "unhelpful"),
        down_comments=("The return window it quoted is wrong.", "No link to the label."),
    ),
    Topic(
        key="billing",
        label="charges and declined payments",
        template="support-general",
        weight=9,
        down_rate=0.10,
        context=(
            "I just checked my banking app.",
            "My card statement shows {amount} from Larkspur.",
            "I placed order {order} this morning.",
            "I've used the same card with you before without problems.",
            "My bank says there's nothing wrong with the card.",
            "I'm paying for a company order.",
            "I only placed one order.",
        ),
        questions=(
            "I was charged twice for order {order}.",
            "Why was my card declined at checkout?",
            "There is a charge of {amount} I don't recognise.",
            "Can I pay with Apple Pay?",
            "How do I update the card on my account?",
            "Where can I download an invoice for order {order}?",
            "I see a pending charge of {amount} but my order was cancelled.",
            "Can I split the payment across two cards?",
            "Do you offer payment in instalments?",
            "My bank says the payment went through but the order failed.",
            "Why did the price change between my cart and checkout?",
            "I need a VAT invoice for my company.",
            "Was I charged sales tax correctly on the {item}?",
        ),
        down_tags=("unhelpful", "incorrect"),
        down_comments=("I need the duplicate charge removed, not an explanation.",),
    ),
    Topic(
        key="tracking",
        label="order tracking and late deliveries",
        template="order-status",
        weight=14,
        down_rate=0.09,
        context=(
            "I ordered {days} days ago.",
            "The confirmation email said it would arrive yesterday.",
            "I paid for express delivery.",
            "The tracking page just says 'in transit'.",
            "I need it before the weekend.",
            "I've been waiting at home all day.",
            "My neighbour hasn't got it either.",
            "It's a birthday present.",
        ),
        questions=(
            "Where is my order {order}?",
            "My package hasn't arrived yet, it's been {days} days.",
            "The tracking number for order {order} doesn't work.",
            "Tracking hasn't updated in {days} days.",
            "When will the {item} arrive?",
            "It says delivered but I never got the package.",
            "Can you tell me which courier is delivering my order?",
            "My order {order} still says processing, when will it ship?",
            "Why is my delivery late?",
            "Is express delivery guaranteed to arrive tomorrow?",
            "I was out when the courier came, how do I rebook delivery?",
            "How do I track an order I placed as a guest?",
            "Only half of order {order} has arrived, where is the rest?",
            "The delivery date keeps moving back for my {item}.",
            "Do you deliver on Saturdays?",
        ),
        down_tags=("unhelpful", "incorrect"),
        down_comments=(
            "I know where to find the tracking link, it hasn't moved.",
            "Didn't tell me anything about my actual order.",
        ),
    ),
    Topic(
        key="address",
        label="changing the delivery address",
        template="order-status",
        weight=5,
        down_rate=0.08,
        context=(
            "I just placed order {order}.",
            "I'm moving house next week.",
            "I typed my old address by mistake.",
            "Nobody is home during the day.",
            "The order hasn't shipped yet.",
            "I'm staying with my parents this month.",
        ),
        questions=(
            "How do I change the delivery address on order {order}?",
            "I entered the wrong address, can you fix it?",
            "Can I send the {item} to my work address instead?",
            "I moved house, how do I update my saved address?",
            "Can I have the order delivered to a pickup point?",
            "The address form won't accept my postcode.",
            "Can I ship one order to two different addresses?",
            "Is it too late to change the address once it has shipped?",
            "How do I add delivery instructions for the courier?",
        ),
        down_comments=("It had already shipped, so this didn't help.",),
    ),
    Topic(
        key="damaged",
        label="damaged or missing items",
        template="support-general",
        weight=6,
        down_rate=0.12,
        context=(
            "The box looked fine from the outside.",
            "I opened the parcel today.",
            "I took photos of it.",
            "It was a present for my mother.",
            "This is the second time this has happened.",
            "The delivery driver just left it at the door.",
        ),
        questions=(
            "The {item} arrived broken.",
            "My {item} was damaged in transit, what do I do?",
            "An item is missing from order {order}.",
            "I received the wrong item in order {order}.",
            "The {item} has a scratch on it, can I get a replacement?",
            "Part of the {item} is missing, there are no screws in the box.",
            "The box was crushed and the {item} inside is cracked.",
            "Do I need to send photos of the damaged {item}?",
            "The colour of the {item} is completely different from the photos.",
            "Can you send a replacement {item} instead of a refund?",
        ),
        down_tags=("unhelpful",),
        down_comments=("I want a replacement, not a list of steps.",),
    ),
    Topic(
        key="membership",
        label="the Larkspur Plus membership",
        template="support-general",
        weight=8,
        down_rate=0.09,
        context=(
            "I signed up for Plus during the summer sale.",
            "I don't order as often as I used to.",
            "I'm on the monthly plan.",
            "My free trial started {days} days ago.",
            "I saw a charge for Plus on my statement.",
            "My friend told me about Plus.",
        ),
        questions=(
            "How do I cancel my Larkspur Plus membership?",
            "Will my Plus subscription renew automatically?",
            "What do I get with Larkspur Plus?",
            "Can I switch from the monthly plan to the annual plan?",
            "I was charged for Plus after my free trial, can I cancel?",
            "Does Plus include free express delivery?",
            "How do I pause my membership for a few months?",
            "Can I share my Plus membership with my partner?",
            "When does my free trial end?",
            "I cancelled Plus, do I keep the benefits until the end of the month?",
            "How do I upgrade to Plus?",
            "Can I get a refund for the unused part of my annual plan?",
        ),
        down_tags=("unhelpful", "incorrect"),
        down_comments=("I asked about pausing, not cancelling.",),
    ),
    Topic(
        key="promo",
        label="promo codes and discounts",
        template="support-general",
        weight=7,
        down_rate=0.12,
        context=(
            "I got the code {code} in your newsletter.",
            "I'm about to check out a cart of {amount}.",
            "The banner on the homepage says 20% off.",
            "A friend sent me a referral link.",
            "I'm trying to check out right now.",
            "I already placed order {order}.",
        ),
        questions=(
            "My promo code {code} isn't working.",
            "The discount wasn't applied to my order.",
            "Can I use two discount codes on one order?",
            "Does {code} work on sale items?",
            "I forgot to enter {code} at checkout, can you apply it now?",
            "Is there a student discount?",
            "The site says {code} has expired but the email says it's valid until Sunday.",
            "Why is the free shipping code not applying to my cart?",
            "How do I get the newsletter welcome discount?",
            "Do you price match if the {item} is cheaper elsewhere?",
            "Where do I enter a promo code in the app?",
        ),
        down_tags=("unhelpful",),
        down_comments=("Just tell me whether the code is valid.",),
    ),
    Topic(
        key="app",
        label="app problems",
        template="support-general",
        weight=7,
        down_rate=0.11,
        context=(
            "I'm using the app on my {device}.",
            "This started after the latest update.",
            "I've already reinstalled the app.",
            "The website works fine on my laptop.",
            "It happens every single time.",
            "I'm on wifi and my connection is fine.",
        ),
        questions=(
            "The app crashes when I open my cart.",
            "The app keeps freezing on my {device}.",
            "I can't upload a photo for my review, it shows an error.",
            "The checkout button does nothing in the app.",
            "The app is very slow since the last update.",
            "Images don't load in the app on my {device}.",
            "I get 'something went wrong' when I try to pay in the app.",
            "The app logs me out randomly.",
            "Push notifications stopped working on my {device}.",
            "The search in the app shows no results for anything.",
            "The app won't open at all after updating.",
            "My wishlist disappeared from the app.",
        ),
        down_tags=("unhelpful",),
        down_comments=("Already updated and restarted, still broken.",),
    ),
    Topic(
        key="privacy",
        label="account deletion and data",
        template="account-help",
        weight=5,
        down_rate=0.07,
        context=(
            "I don't shop with you any more.",
            "I'm tidying up my online accounts.",
            "I get three emails a week from you.",
            "I read about a data breach at another shop.",
            "I used my old work email when I signed up.",
            "I want to keep my order history if possible.",
        ),
        questions=(
            "How do I delete my account?",
            "Can I download a copy of all my data?",
            "How do I stop the marketing emails?",
            "What do you do with my personal data?",
            "I want all my data erased under GDPR.",
            "How do I unsubscribe from the newsletter?",
            "Do you share my address with third parties?",
            "How do I change the email address on my account?",
            "Can I turn off personalised recommendations?",
            "I keep getting emails after unsubscribing.",
        ),
        down_comments=("Still getting the emails.",),
    ),
    Topic(
        key="stock",
        label="stock and product questions",
        template="support-general",
        weight=4,
        down_rate=0.10,
        context=(
            "I've had the {item} on my wishlist for a while.",
            "I saw the {item} on your Instagram.",
            "I want to buy it as a wedding present.",
            "The product page says 'coming soon'.",
            "My sister bought one last month.",
        ),
        questions=(
            "When will the {item} be back in stock?",
            "Is the {item} dishwasher safe?",
            "What are the dimensions of the {item}?",
            "Does the {item} come assembled?",
            "Can I pre-order the {item}?",
            "Is the {item} available in other colours?",
            "What is the warranty on the {item}?",
            "Will you restock the {item} before Christmas?",
            "Is the {item} made from sustainable materials?",
        ),
        down_comments=("It didn't know anything about the product.",),
    ),
    # The planted new topic: gift cards launch at the start of the current window.
    Topic(
        key="gift_cards",
        label="gift cards (launched in the last days)",
        template="support-general",
        weight=0,
        down_rate=0.20,
        context=(
            "I saw the new gift cards on your homepage.",
            "My aunt gave me a Larkspur gift card for my birthday.",
            "I want to get something for a housewarming.",
            "I received a gift card email from a friend.",
            "I have a gift card worth {amount}.",
            "I'm trying to buy something for my new flat.",
            "This is the first time I'm using one of your gift cards.",
        ),
        questions=(
            "How do I redeem a Larkspur gift card?",
            "My gift card code says invalid.",
            "How do I check my gift card balance?",
            "Can I use a gift card and my credit card together?",
            "Where do I buy a digital gift card?",
            "Can I send a gift card by email on a specific date?",
            "Do gift cards expire?",
            "I bought a gift card but the recipient never got the email.",
            "Can I use a gift card on the Larkspur Plus membership?",
            "How do I add a personal message to a gift card?",
            "Can I get a refund on an unused gift card?",
            "The gift card field doesn't show up at checkout.",
            "Can I use my gift card in the app?",
            "Is there a maximum amount for a gift card?",
        ),
        down_tags=("unhelpful", "irrelevant"),
        down_comments=(
            "It talked about card payments, I asked about a gift card.",
            "Doesn't seem to know gift cards exist.",
        ),
    ),
)

UP_TAGS = ((), (), ("helpful",), ("clear",), ("fast",))
UP_COMMENTS = ("", "", "", "", "Thanks, that worked.", "Perfect, sorted.", "Clear and quick.")


def _fill(text: str, rng: random.Random, chosen: dict[str, str]) -> str:
    """``text`` with its slots filled; a slot named twice in one message keeps its value."""
    while "{" in text:
        start = text.index("{")
        name = text[start + 1 : text.index("}", start)]
        if name not in chosen:
            order = f"#{rng.randint(100000, 999999)}"
            chosen[name] = order if name == "order" else rng.choice(SLOTS[name])
        text = text[:start] + chosen[name] + text[start + len(name) + 2 :]
    return text


def ask(topic: Topic, rng: random.Random) -> str:
    """One customer message on ``topic``: a question, often with some context, slots filled."""
    chosen: dict[str, str] = {}
    text = _fill(rng.choice(topic.questions), rng, chosen)
    roll = rng.random()
    if topic.context and roll < 0.75:
        said = _fill(rng.choice(topic.context), rng, chosen)
        text = f"{said} {text}" if roll < 0.55 else f"{text} {said}"
    return f"{rng.choice(OPENINGS)}{text}{rng.choice(CLOSINGS)}".strip()


def comment_for(comments: tuple[str, ...], rng: random.Random) -> str | None:
    """A comment from ``comments`` about half of the time (most users leave none)."""
    return rng.choice(comments) if comments and rng.random() < 0.5 else None
