"""A small retrieval test set written for batchsvc (issue 3): everyday and work memories,
paraphrase queries that share few or no content words with their answer, and keyword queries
(a rare word, a number, a name) that appear in exactly one memory, or in exactly two memories
in different contexts (`SHARED_KEYWORDS`: the query's other words decide).

Several memories are distractors: they share common words ("the", "team", "meeting", "payment",
"week", "new") or a query's surface words ("bread", "travel", "pipe ... drips") with queries
whose answer is elsewhere, so a lexical side that lets such words count would rank them first.
Some memories have a title (`TITLES`); `text` gives what the service indexes.

The queries were written before the set was run, and not tuned to any mode's results.
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
    # --- Added for the larger set: work, technical, home, family, recipes, travel, health,
    # finance and hobbies; several share surface words with queries whose answer is elsewhere
    # ("bread", "travel", "pipe ... drips", "keeps getting stuck", "appointment ... broken fix").
    "db_migration": "Running the schema migration on the orders table held an exclusive lock for "
    "twelve minutes and checkout requests queued behind it. Next time build the index "
    "concurrently and split the change in two.",
    "flaky_test": "The integration suite fails about one run in ten because a test depends on "
    "the wall clock; Ravi is rewriting it to use a frozen clock.",
    "secret_rotation": "Rotate the payment gateway's API secret every ninety days. The last "
    "rotation was on 2 February; the new value lives in the vault under stripe/prod.",
    "oncall": "On-call rota for March: Mehmet covers the first fortnight and Sofia the second. "
    "Pages go to the phone app; escalate to the platform lead after fifteen minutes without an "
    "answer.",
    "memory_leak": "The image resizing worker grows to four gigabytes overnight; heap dumps point "
    "at a cache of decoded thumbnails that is never evicted.",
    "dns": "Moved the domain's nameservers to the new registrar on Friday. Propagation can take up "
    "to 48 hours, so some users may still reach the old host.",
    "code_review": "Every pull request needs one approval from someone outside the author's "
    "squad, and anything touching billing needs a second reviewer.",
    "cluster_costs": "Our Kubernetes bill doubled since spring because the staging nodes run all "
    "weekend. Schedule them to scale to zero on Friday evening and back up on Monday.",
    "latency": "After upgrading the JSON library, p99 response times on the search endpoint rose "
    "from 120 to 340 milliseconds. Rolled back until someone profiles it.",
    "perf_review": "Annual performance reviews open on 1 May: self-assessments come first, then "
    "managers write theirs, and calibration happens in June.",
    "parental_leave": "Anika starts parental leave on the 9th for six months. Jonas takes over her "
    "accounts, including the Wednesday client calls.",
    "board_meeting": "The board meeting on the 17th will review the annual budget and approve the "
    "new pricing; slides go to the chair a week before.",
    "lost_client": "Brightwell moved to a cheaper competitor after our support response times "
    "slipped in the autumn. Their contract was worth a tenth of revenue.",
    "expenses": "Expense claims need a photo of each receipt and must be filed within sixty days; "
    "meals while travelling are capped at forty-five a day.",
    "desk_booking": "Hot desks on the second floor have to be reserved in the app by 10 am, "
    "otherwise they are released to whoever walks in.",
    "security_course": "The yearly security awareness course is mandatory for all staff; it takes "
    "forty minutes and covers passwords and suspicious links.",
    "intern": "Camille, the summer intern, is building the reporting dashboards; she needs read "
    "access to the analytics database and a mentor.",
    "retro": "Sprint retrospective: the team wants fewer meetings, clearer tickets and a rotating "
    "facilitator so the same person does not always run it.",
    "conference_talk": "My talk at the data conference was accepted: twenty-five minutes on search "
    "relevance, with slides due two weeks before.",
    "booking_bug": "The appointment booking form on the website is broken for mobile users; the "
    "fix ships with next sprint's release.",
    "washing_machine": "The washing machine stops mid-cycle with error E21. The manual says the "
    "drain filter is blocked and should be cleared from the hatch at the bottom.",
    "fridge": "The fridge freezer hums loudly at night; the warranty covers a free engineer visit "
    "if the fault is registered online.",
    "tomatoes": "Tomato seedlings go into the greenhouse after the last frost; pinch out the side "
    "shoots and feed weekly once flowers appear.",
    "home_insurance": "Home insurance renews on 3 September and the quote went up by a third. Ask "
    "the broker for alternatives and check the excess before accepting.",
    "sink_leak": "A pipe under the kitchen sink drips whenever the dishwasher runs. Tightened the "
    "joint, but it still needs a plumber to replace the seal.",
    "window_cleaner": "The window cleaner comes every four weeks on a Tuesday and is paid in cash; "
    "leave the side gate unlocked for him.",
    "council_tax": "Council tax band was reviewed after the loft conversion; the new bill is "
    "higher from April and is taken by direct debit.",
    "smoke_alarm": "Replaced the batteries in the smoke alarms on the landing and in the kitchen; "
    "test them monthly by holding the button down.",
    "broadband": "The broadband contract ends in July; the provider offers faster fibre for the "
    "same price if we sign up for another eighteen months.",
    "home_printer": "The home printer keeps getting stuck on offline. Reinstalling the driver and "
    "restarting the router fixed it last time.",
    "coffee_beans": "Coffee beans subscription: a bag of Ethiopian every two weeks. Pause it while "
    "we are away in August.",
    "grandad": "Grandad is in hospital after a fall. Visiting hours are two till eight; he would "
    "like the crossword and his reading glasses.",
    "swimming": "Leo's swimming lessons are on Mondays at the leisure centre. He needs goggles and "
    "has to be there ten minutes before the start.",
    "anniversary": "Our tenth wedding anniversary is on 2 October. Table booked at Marlow's, the "
    "fish restaurant by the harbour, for half seven.",
    "phone_rules": "Agreed with Sam that his phone stays downstairs after nine on school nights, "
    "and screen time is two hours a day at weekends.",
    "pocket_money": "Pocket money goes up to five a week after the birthday; two of it has to go "
    "into the savings jar.",
    "lasagne": "Brown the mince with onion and carrot, add passata and simmer for an hour; layer "
    "with bechamel and pasta sheets and bake 40 minutes at 180.",
    "pancakes": "Pancakes for Sunday: 100 g flour, two eggs, 300 ml milk and a pinch of salt. Rest "
    "the batter for half an hour and use a very hot pan.",
    "banana_bread": "Three very ripe bananas, melted butter, brown sugar, one egg and "
    "self-raising flour. Bake for 50 minutes and let it cool in the tin.",
    "leek_soup": "Leek and potato soup: sweat the leeks in butter, add diced potato and stock, "
    "cook twenty minutes, blend and finish with cream.",
    "meal_plan": "Meal plan this week: curry on Monday, fish on Wednesday, leftovers Thursday, "
    "takeaway Friday. The shopping is delivered on Sunday morning.",
    "train_tickets": "Booked advance rail tickets to Edinburgh for the 12th, coach C seats 41 and "
    "42; they are only valid on the 07:30 service.",
    "japan": "A week in Kyoto in April, then Tokyo. Buy the rail pass before leaving and book the "
    "ryokan with the private hot spring.",
    "travel_insurance": "The annual travel insurance only covers winter sports if we add the ski "
    "extension. Policy number TRV-55102.",
    "car_hire": "The rental car from Faro airport must go back with a full tank. We declined the "
    "excess waiver, so photograph every scratch at pick-up.",
    "lost_luggage": "The airline lost a suitcase on the way home; the reference is LHR-88310 and "
    "they refund essentials up to a limit if we keep the receipts.",
    "visa": "Need an electronic travel authorisation for the conference in Toronto; apply at least "
    "three weeks ahead and have the passport to hand.",
    "blood_pressure": "The GP says my blood pressure is borderline high. Measure it at home twice "
    "a day for a week and cut down on salt before the follow-up.",
    "physio": "Physio exercises from Dr. Rivera for the knee: straight leg raises and wall squats, "
    "three sets of ten daily, and no running for another month.",
    "inhaler": "The repeat prescription for the inhaler can be ordered through the pharmacy app; "
    "it takes two working days to be ready.",
    "eye_test": "Eye test showed slight short-sightedness; glasses are only needed for driving and "
    "the cinema. Next check in two years.",
    "sleep": "Sleeping badly since the clocks changed. The nurse suggested no screens for an hour "
    "before bed and a fixed time to get up.",
    "pension": "Raised pension contributions to eight percent; the employer matches up to six. "
    "Check the fund's charges on the annual statement.",
    "isa": "Put this year's allowance into the stocks and shares ISA before the 5th of April "
    "deadline; the platform fee is 0.25 percent.",
    "loan_dario": "Lent Dario 400 for his van repair; he will pay it back in two instalments, the "
    "last by Christmas.",
    "kitchen_savings": "Saving for a new kitchen: 250 a month into the easy-access account, aiming "
    "for about nine thousand by next autumn.",
    "bank_switch": "Switching the current account to another bank: the new one moves direct debits "
    "across automatically within seven working days.",
    "card_fraud": "An unknown charge from an online shop I never used appeared on the credit card. "
    "Disputed it, and the card has been cancelled and replaced.",
    "guitar": "Guitar goals: learn the F barre chord and the strumming pattern from the video. The "
    "strings need changing; buy 10-46 gauge.",
    "book_club": "Book club meets on the last Thursday; this month we read a novel about a whaling "
    "voyage, and it is my turn to host.",
    "photography": "Photography course: shoot in aperture priority, keep ISO low in daylight and "
    "bring the 50 mm lens to Saturday's street walk.",
    "allotment": "Allotment plot 14B needs digging over before March. The committee inspects every "
    "plot and warns tenants who let theirs get overgrown.",
    "charity_run": "Sponsored Kate's charity marathon; the donation page closes at the end of the "
    "month and gift aid was ticked.",
    "mot": "The MOT is due on the 30th. A headlight bulb is out and the wiper blades are worn, "
    "which would fail the test.",
    "parking_fine": "Got a parking fine outside the school for stopping on the zigzag lines; "
    "appeal within fourteen days or pay half.",
    # Pairs that share a rare word (a number, a name) in different contexts: SHARED_KEYWORDS.
    "cleaning_invoice": "Invoice 48213 from the cleaning contractor is disputed: they billed for "
    "weekend shifts nobody asked for. Raise it with facilities.",
    "chairs_order": "Purchase order 48213 for twelve office chairs was approved; delivery to the "
    "third floor is expected in three weeks.",
    "greta_legal": "Greta in legal reviews every supplier contract over ten thousand; send her the "
    "draft and the redlines together.",
    "greta_catsitter": "Greta, the neighbours' daughter, feeds the cat while we are away; she gets "
    "the back door key and ten a visit.",
    "planning_room": "Quarterly planning is in room 412 on the fourth floor from ten to four; "
    "lunch is provided and laptops stay closed.",
    "hotel_room": "Hotel in Porto: room 412, breakfast from seven, and late checkout at two if we "
    "ask the front desk the night before.",
    "audit": "Marco Rivera, the external auditor, arrives on the 4th for the year-end audit; he "
    "needs a desk and the bank statements.",
}

#: Titles of some memories (the service indexes and embeds "title\ncontent").
TITLES: dict[str, str] = {
    "db_migration": "Migration incident",
    "cluster_costs": "Cluster spend",
    "lost_client": "Account lost",
    "expenses": "Expense policy",
    "lasagne": "Lasagne",
    "banana_bread": "Banana bread",
    "japan": "Japan trip",
    "travel_insurance": "Ski cover",
    "physio": "Knee rehab",
    "kitchen_savings": "Kitchen fund",
    "retro": "Retro notes",
    "hotel_room": "Porto stay",
    "oncall": "Rota",
    "washing_machine": "Washer fault",
    "allotment": "Plot",
}


def text(key: str) -> str:
    """The text the service indexes for a memory: the title, if any, then the content."""
    title = TITLES.get(key)
    return f"{title}\n{MEMORIES[key]}" if title else MEMORIES[key]


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
    # --- Added for the larger set.
    ("altering a large table blocked purchases", "db_migration"),
    ("intermittent CI breakage caused by timing", "flaky_test"),
    ("how often to change the credentials for taking card payments", "secret_rotation"),
    ("who responds to alerts out of hours this month", "oncall"),
    ("a background job keeps eating RAM until it crashes", "memory_leak"),
    ("website address transferred to a different provider", "dns"),
    ("rules for getting changes merged", "code_review"),
    ("test environment machines wasting money when nobody works", "cluster_costs"),
    ("slower API answers following a dependency update", "latency"),
    ("yearly appraisal timeline", "perf_review"),
    ("colleague away caring for her baby, and who covers her customers", "parental_leave"),
    ("directors gathering to sign off on what we charge", "board_meeting"),
    ("why a big customer left us", "lost_client"),
    ("getting reimbursed for work costs", "expenses"),
    ("claiming a workspace at the office ahead of time", "desk_booking"),
    ("compulsory online cyber lesson for employees", "security_course"),
    ("student joining us for the holidays to make charts", "intern"),
    ("looking back at what went wrong in the last iteration", "retro"),
    ("speaking slot at an industry event approved", "conference_talk"),
    ("online reservation page fault on phones", "booking_bug"),
    ("laundry appliance won't empty out the water", "washing_machine"),
    ("noisy cold storage appliance in the kitchen", "fridge"),
    ("growing salad fruit under glass", "tomatoes"),
    ("house cover premium rising", "home_insurance"),
    ("water escaping beneath the basin", "sink_leak"),
    ("person who washes our glass outside and how he gets his money", "window_cleaner"),
    ("local property charge went up after the attic became a bedroom", "council_tax"),
    ("fire detector upkeep", "smoke_alarm"),
    ("internet deal expiring with an upgrade offer", "broadband"),
    ("the household inkjet cannot be reached from the computer", "home_printer"),
    ("regular delivery of roasted grounds", "coffee_beans"),
    ("elderly relative admitted to a ward", "grandad"),
    ("when does my son go to the pool", "swimming"),
    ("dinner to celebrate a decade of marriage", "anniversary"),
    ("limits on my teenager's mobile use", "phone_rules"),
    ("kids' weekly allowance", "pocket_money"),
    ("Italian oven dish with meat sauce", "lasagne"),
    ("breakfast crepe mixture quantities", "pancakes"),
    ("cake made with overripe fruit", "banana_bread"),
    ("warming blended vegetable starter", "leek_soup"),
    ("what we are eating each evening", "meal_plan"),
    ("reserved places on the railway journey north", "train_tickets"),
    ("holiday in the far east next spring", "japan"),
    ("being protected on a trip to the slopes", "travel_insurance"),
    ("returning the vehicle we hired abroad", "car_hire"),
    ("bag missing after the flight back", "lost_luggage"),
    ("entry permit for Canada", "visa"),
    ("doctor worried about hypertension", "blood_pressure"),
    ("rehab routine for a sore joint", "physio"),
    ("getting more asthma medicine", "inhaler"),
    ("optician visit result", "eye_test"),
    ("trouble with insomnia", "sleep"),
    ("retirement savings top-up", "pension"),
    ("tax-free investment limit", "isa"),
    ("money a friend borrowed from me", "loan_dario"),
    ("putting cash aside to redo the cooking area", "kitchen_savings"),
    ("changing which lender holds my everyday account", "bank_switch"),
    ("suspicious transaction on my statement", "card_fraud"),
    ("six-string instrument practice targets", "guitar"),
    ("reading group gathering at mine", "book_club"),
    ("camera class settings", "photography"),
    ("community vegetable patch upkeep", "allotment"),
    ("giving money for a friend's fundraising race", "charity_run"),
    ("yearly roadworthiness check for the car", "mot"),
    ("penalty for leaving the car in the wrong spot", "parking_fine"),
    ("disagreement over a janitorial bill", "cleaning_invoice"),
    ("new seating for staff has been signed off", "chairs_order"),
    ("who checks large vendor agreements", "greta_legal"),
    ("the girl next door looks after our pet during trips", "greta_catsitter"),
    ("where the three-monthly strategy day is held", "planning_room"),
    ("where we sleep on the trip to Portugal and when the morning meal is", "hotel_room"),
    ("outside accountant inspecting the books annually", "audit"),
    # Mixed: one common word the answer shares ("team", "new", "week", "meeting"), which many
    # distractors share too; it must not outweigh the meaning.
    ("the team's morning sync shifted for colleagues abroad", "standup"),
    ("new rules for paying the people we buy from", "payment_terms"),
    ("the weekly update for senior management", "weekly_report"),
    ("what the product group decided to delay", "meeting_notes"),
    ("our new workplace and its facilities", "new_office"),
    ("this week's group meal out", "team_lunch"),
    ("the meeting where next year's prices get signed off", "board_meeting"),
    ("the team would like a different colleague to lead each session", "retro"),
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
    # --- Added for the larger set: rare words, numbers and names, mostly among common words
    # that distractors share ("the", "new", "meeting", "test", "machine", "table", "car").
    ("Ravi and the failing test", "flaky_test"),
    ("the Stripe secret in the vault", "secret_rotation"),
    ("Mehmet on call", "oncall"),
    ("the new registrar for our domain", "dns"),
    ("the Kubernetes nodes over the weekend", "cluster_costs"),
    ("the 340 ms slowdown", "latency"),
    ("Jonas and the Wednesday calls", "parental_leave"),
    ("call Brightwell about the account next week", "lost_client"),
    ("Camille needs access to the database", "intern"),
    ("what was the error code E21 on the machine", "washing_machine"),
    ("Leo and his goggles", "swimming"),
    ("book a table at Marlow's for dinner", "anniversary"),
    ("what we agreed with Sam", "phone_rules"),
    ("the bechamel for Sunday dinner", "lasagne"),
    ("the train to Edinburgh on the 12th", "train_tickets"),
    ("seats 41 and 42", "train_tickets"),
    ("Kyoto hotel booking", "japan"),
    ("policy number TRV-55102 for the trip", "travel_insurance"),
    ("Faro airport car", "car_hire"),
    ("our flight home with reference LHR-88310", "lost_luggage"),
    ("Toronto conference trip", "visa"),
    ("Dario still owes me money", "loan_dario"),
    ("putting 250 away every month", "kitchen_savings"),
    ("who has plot 14B", "allotment"),
    ("Ethiopian coffee", "coffee_beans"),
    ("the VPN client version on the new laptop", "vpn"),
    ("Okafor appointment next week", "dentist"),
    ("the dog Biscuit at the park", "dog_walker"),
    ("our home network called Lighthouse", "wifi_password"),
]

#: (query, memory key): a rare word (a number, a name) that exactly two memories hold, in
#: different contexts; the query's other words must decide which one comes first.
SHARED_KEYWORDS: list[tuple[str, str]] = [
    ("the meeting about invoice 48213", "cleaning_invoice"),
    ("when do the chairs on order 48213 arrive", "chairs_order"),
    ("ask Greta about the contract", "greta_legal"),
    ("Greta feeding the cat", "greta_catsitter"),
    ("room 412 for the planning day", "planning_room"),
    ("our hotel room 412", "hotel_room"),
    ("Rivera knee exercises", "physio"),
    ("the audit with Rivera", "audit"),
]
