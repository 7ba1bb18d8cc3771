"""A small retrieval test set written for batchsvc (issue 3): everyday and work memories,
paraphrase queries that share few or no content words with their answer, and keyword queries
(a rare word, a number, a name) that appear in exactly one memory.

Several memories are distractors: they share common words ("the", "team", "meeting", "payment",
"week", "new") with queries whose answer is elsewhere, so a lexical side that lets common words
count would rank them first.
"""

from __future__ import annotations

#: Memories by key. Keys are only labels for the queries below; the service assigns ids.
MEMORIES: dict[str, str] = {
    "dentist": "Booked a check-up with Dr. Okafor for the chipped molar. The clinic asked me to "
    "arrive ten minutes early and bring my insurance card.",
    "car_service": "The hatchback is due for its oil change and tyre rotation at 60,000 km. The "
    "garage on Mill Lane quoted a fixed price including the brake inspection.",
    "passport": "My passport expires in March, so the renewal form has to go in before the "
    "summer trip. Two photos are needed, signed on the back by a referee.",
    "wifi_password": "The guest network at home is called Lighthouse and its key is written on "
    "the card taped inside the hallway cupboard.",
    "sourdough": "Feed the starter the night before baking: equal weights of rye flour and water. "
    "The loaf needs a long cold proof in the fridge for a sour crumb.",
    "dog_walker": "Priya walks Biscuit on Tuesdays and Thursdays at noon. She has the spare key "
    "and knows he must not be let off the lead near the park pond.",
    "gym": "Cancelled the gym membership from next month; the contract needed thirty days of "
    "written notice, sent by recorded letter.",
    "mortgage": "The fixed rate on the home loan ends in October. The broker suggested comparing "
    "a two-year fix against a tracker before the lender's offer lapses.",
    "boiler": "The heating engineer said the boiler pressure keeps dropping because of a leaking "
    "valve under the radiator in the spare room.",
    "recycling": "Bins: glass and cans go out on alternate Wednesdays, garden waste every Friday. "
    "The council stopped collecting soft plastics.",
    "birthday_mum": "Mum turns seventy on the 14th of June. My sister is organising a lunch at "
    "the seaside hotel where our parents married.",
    "allergy": "Tom is allergic to peanuts and carries an adrenaline pen. Tell the restaurant "
    "when we book for his visit.",
    "piano": "Maya's piano lessons moved to Saturday mornings. Her teacher wants her to practise "
    "scales fifteen minutes a day before the grade exam.",
    "running": "Training plan for the half marathon: three easy runs, one tempo session and a "
    "long run on Sunday, adding two kilometres each fortnight.",
    "tax_return": "The self-assessment is due by the end of January. Keep the receipts for the "
    "home office equipment; they are deductible.",
    "invoice_late": "Invoice INV-20931 from the printing supplier was settled three weeks late "
    "because the purchase order number was missing from it.",
    "vpn": "Remote staff cannot reach the intranet when the VPN client is older than version 5; "
    "the fix is to reinstall it from the self-service portal.",
    "outage": "Yesterday's outage started when a certificate on the load balancer expired at "
    "midnight. Customers saw connection errors for forty minutes.",
    "standup": "The daily standup moves to 9:30 so that the team in Lisbon can join before "
    "lunch. Keep updates to one minute per person.",
    "hiring": "We are hiring two backend engineers. The interview loop is a take-home exercise, "
    "a pairing session and a conversation with the director.",
    "onboarding": "New joiners get a laptop on their first morning, a buddy for the first month, "
    "and access to the code repository after the security training.",
    "budget": "Finance froze discretionary spending for the rest of the quarter; conference "
    "travel needs approval from the vice president.",
    "release": "Version 3.2 ships on Thursday. The release notes must mention the removed export "
    "endpoint and the new rate limits.",
    "backup": "Database snapshots are taken every six hours and kept for thirty days. A restore "
    "drill last spring took two hours end to end.",
    "ticket_refund": "Support ticket 58214: a customer was charged twice for the annual plan; "
    "finance approved refunding the duplicate charge.",
    "offsite": "The team offsite is in a converted barn near the lake. Bring walking boots; "
    "the agenda is strategy in the morning and a hike after lunch.",
    "printer": "The office printer on the third floor jams on thick paper. Use the manual tray "
    "for envelopes and card stock.",
    "parking": "Visitors must register their number plate at reception, otherwise the car park "
    "barrier will not open for them.",
    "coffee": "The espresso machine in the kitchen needs descaling every month; the tablets are "
    "in the drawer under the sink.",
    "feedback": "Gave Leon feedback that his design documents are thorough but arrive too late "
    "for reviewers to read them before the meeting.",
    "contract_renewal": "The cloud hosting contract renews automatically in November unless we "
    "give notice ninety days ahead. Procurement wants competing quotes.",
    "laptop_theft": "A laptop was stolen from a car in the station car park. IT wiped it "
    "remotely and the police issued a crime reference for the insurer.",
    "phishing": "Several colleagues received emails pretending to be from payroll asking them to "
    "confirm bank details through a link. Security blocked the sender.",
    "keyboard": "Ordered an ergonomic split keyboard after the wrist pain came back; the "
    "occupational health nurse also recommended a vertical mouse.",
    "plants": "The fiddle-leaf fig drops leaves when it sits in a draught. Move it away from the "
    "balcony door in winter and water only when the topsoil is dry.",
    "holiday": "Flights to Crete are booked for the last week of August. The villa has a pool "
    "and the host will leave the keys in a lockbox.",
    "moving": "The removal van arrives at eight on Saturday. Pack the kitchen last and label "
    "every box with the room it belongs in.",
    "electricity": "Switched energy supplier; the first meter reading has to be submitted within "
    "five days of the switch date.",
    "neighbour": "The neighbour at number 12 complained about our hedge overhanging the "
    "pavement. Trim it back before the end of the month.",
    "library": "Three library books are overdue; the fine is twenty pence a day each. They can "
    "be returned through the slot when the branch is closed.",
    "vaccine": "The children's booster jabs are scheduled at the surgery on the 3rd. Bring the "
    "red health record book.",
    "babysitter": "Our babysitter charges twelve an hour and needs a lift home after ten at "
    "night. Her number is on the fridge.",
    "recipe_curry": "The chickpea curry: fry onion, garlic and ginger, add cumin and turmeric, "
    "then tomatoes and coconut milk; simmer for twenty minutes.",
    "bike": "The bicycle's rear derailleur skips gears. The shop said the chain is stretched and "
    "the cassette should be replaced at the same time.",
    "roof": "After the storm a few slates came off the roof above the bathroom. A roofer will "
    "come on Monday to look at it and give a quote.",
    "school": "Parents' evening is on the 21st; the form teacher wants to discuss reading "
    "homework and the upcoming field trip.",
    "bank_card": "The debit card was declined abroad because the bank flagged the purchase as "
    "suspicious. Unblock it in the app before travelling.",
    "subscription": "Streaming services: we pay for three but only watch one. Cancel the two "
    "unused ones before the next billing date.",
    "meeting_notes": "Notes from the product meeting: the team agreed to postpone the mobile "
    "redesign and focus on search quality for the next two sprints.",
    "weekly_report": "The weekly report goes to the leadership team every Friday afternoon with "
    "metrics on signups, churn and open incidents.",
    "payment_terms": "New payment terms for suppliers are sixty days from invoice date, agreed "
    "with the procurement team last week.",
    "new_office": "The new office has standing desks, a quiet room and bike storage in the "
    "basement; the move is planned for the spring.",
    "team_lunch": "Team lunch this week is at the Vietnamese place round the corner; book a "
    "table for eight.",
    "quokka": "Project Quokka is the internal name for the data warehouse migration; its "
    "steering group meets monthly.",
    "supplier_name": "Our packaging comes from Halvorsen & Brisk; their account manager prefers "
    "calls to emails.",
    "serial": "The replacement router has serial number SN-77K4Q2 and is still under warranty "
    "until the end of next year.",
    "flight_code": "The conference flight is BA0947 departing at 06:55 from terminal 5; check in "
    "online the day before.",
    "wedding": "Ines and Joaquim's wedding is in Porto; the gift list is at a homeware shop and "
    "the dress code is smart casual.",
    "gdpr": "A customer asked for every record we hold about her under the data protection law; "
    "legal says we must answer within one month.",
    "vet": "The cat needs her annual jabs and a worming tablet. The vet also wants to weigh her "
    "because she seems to be putting on weight.",
}

#: (query, memory key): queries that share few or no content words with their answer.
PARAPHRASES: list[tuple[str, str]] = [
    ("appointment to fix a broken tooth", "dentist"),
    ("vehicle maintenance and engine lubricant", "car_service"),
    ("travel document about to run out", "passport"),
    ("how to get visitors online at my house", "wifi_password"),
    ("making bread with natural yeast", "sourdough"),
    ("who takes our puppy out during the week", "dog_walker"),
    ("ending my fitness club subscription", "gym"),
    ("house financing deal coming to an end", "mortgage"),
    ("the heater loses pressure and a pipe drips", "boiler"),
    ("which day is rubbish collected", "recycling"),
    ("my mother's big celebration", "birthday_mum"),
    ("guest with a nut allergy coming to dinner", "allergy"),
    ("child's music class schedule", "piano"),
    ("preparing for a long distance race", "running"),
    ("filing my yearly income declaration", "tax_return"),
    ("why a supplier bill was paid after the deadline", "invoice_late"),
    ("people working from home cannot connect to internal sites", "vpn"),
    ("the site went down after an expired TLS cert", "outage"),
    ("morning team check-in time changed", "standup"),
    ("recruiting developers for the server side", "hiring"),
    ("what a recently hired colleague receives on arrival", "onboarding"),
    ("spending restrictions until the end of the period", "budget"),
    ("software launch date and changelog", "release"),
    ("how often do we copy the database and keep the copies", "backup"),
    ("customer billed double for a yearly subscription", "ticket_refund"),
    ("company retreat in the countryside", "offsite"),
    ("paper keeps getting stuck in the copier", "printer"),
    ("guests need to sign in their car to get through the gate", "parking"),
    ("cleaning limescale from the coffee maker", "coffee"),
    ("told a coworker his specs show up behind schedule", "feedback"),
    ("cloud provider agreement auto-extends", "contract_renewal"),
    ("notebook computer taken from a vehicle and erased from afar", "laptop_theft"),
    ("scam messages impersonating the salary department", "phishing"),
    ("equipment to ease my sore hand from typing", "keyboard"),
    ("houseplant shedding its foliage", "plants"),
    ("summer beach vacation in Greece", "holiday"),
    ("relocating house this weekend", "moving"),
    ("changed power company and must send a reading", "electricity"),
    ("kids' immunisation appointment at the doctor", "vaccine"),
    ("gears slipping on my cycle", "bike"),
    ("storm damage to the house tiles", "roof"),
    ("card refused while overseas", "bank_card"),
]

#: (query, memory key): a rare word, a number or a name found in exactly one memory.
KEYWORDS: list[tuple[str, str]] = [
    ("INV-20931", "invoice_late"),
    ("58214", "ticket_refund"),
    ("Okafor", "dentist"),
    ("Priya", "dog_walker"),
    ("Biscuit", "dog_walker"),
    ("Quokka", "quokka"),
    ("Halvorsen", "supplier_name"),
    ("SN-77K4Q2", "serial"),
    ("BA0947", "flight_code"),
    ("Lighthouse", "wifi_password"),
    ("Leon", "feedback"),
    ("Lisbon", "standup"),
    ("Crete", "holiday"),
    ("derailleur", "bike"),
    ("Joaquim", "wedding"),
    # Keywords beside common words that other memories share ("the", "meeting", "invoice",
    # "key"): the common words must not pull a distractor above the keyword's memory.
    ("the Quokka meeting", "quokka"),
    ("invoice 20931", "invoice_late"),
    ("Priya spare key", "dog_walker"),
]
