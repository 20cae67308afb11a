"""Every Redis key the console uses, each built by one documented method.

No other module spells a key. Every key starts with the deployment's prefix
(``CRISIS_KEY_PREFIX``, default ``cc``) so that test runs and several
deployments can share one Redis server; :meth:`Keys.pattern` matches them all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Build key names under one prefix."""

    prefix: str = "cc"

    def _k(self, *parts: object) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    def pattern(self) -> str:
        """Glob matching every key of this deployment (used to clean up test runs)."""
        return f"{self.prefix}:*"

    # --- users -----------------------------------------------------------------

    def user_seq(self) -> str:
        """STRING counter: the last user id handed out (INCR). Never expires."""
        return self._k("seq", "user")

    def user(self, user_id: int | str) -> str:
        """HASH one user: id, username, display_name, role, team, password_hash, active ("1"/"0"),
        session_epoch (bumped to end every session), created_at, updated_at, phone, email,
        language (preferred script language code, e.g. "es"; absent means English). Never expires."""
        return self._k("user", user_id)

    def users_by_name(self) -> str:
        """HASH lower-cased username -> user id; the uniqueness index. Never expires."""
        return self._k("users", "by_name")

    def users_index(self) -> str:
        """ZSET user id scored by creation time (epoch seconds), for listing. Never expires."""
        return self._k("users", "index")

    def active_agents(self) -> str:
        """HASH user id -> team ("" for none) of every active agent: a push's audience is
        read from it in one round trip. Kept in step with the user hashes by UserRepo."""
        return self._k("agents", "active")

    # --- API tokens --------------------------------------------------------------

    def token(self, token_hash: str) -> str:
        """HASH one API token, keyed by the SHA-256 hex of the token (the token itself is never
        stored): user_id, name, created_at, last_used_at. Never expires; deleted on revoke."""
        return self._k("token", token_hash)

    def user_tokens(self, user_id: int | str) -> str:
        """SET the token hashes belonging to one user, so they can be listed and revoked."""
        return self._k("user", user_id, "tokens")

    # --- sessions ----------------------------------------------------------------

    def session(self, session_key: str) -> str:
        """STRING user id of one signed-in browser or API session. Expires after
        ``SESSION_TTL`` seconds without use (each request renews it); deleted on sign-out,
        which is what makes a copied cookie useless afterwards."""
        return self._k("session", session_key)

    # --- sockets -----------------------------------------------------------------

    def user_sockets(self, user_id: int | str) -> str:
        """HASH "namespace sid" -> connected-at (epoch) for one user's live Socket.IO
        connections across every web process; entries are removed on disconnect, and the
        key expires a day after the last connection so crashed processes leave no litter."""
        return self._k("user", user_id, "sockets")

    # --- audit -------------------------------------------------------------------

    def audit(self) -> str:
        """STREAM the append-only audit trail: at, actor, action, subject, details (JSON).
        Never trimmed and never expires: the after-action review is built from it."""
        return self._k("audit")

    # --- events ------------------------------------------------------------------

    def event_seq(self) -> str:
        """STRING counter: the last event id handed out (INCR). Never expires."""
        return self._k("seq", "event")

    def event(self, event_id: int | str) -> str:
        """HASH one emergency event: id, name, kind, severity, areas (JSON list), details (JSON:
        hotline, website, shelter_list… used to fill templates), status (draft/active/closed),
        exercise ("1"/"0"), created_by, created_at, declared_at, closed_at. Never expires."""
        return self._k("event", event_id)

    def events_index(self) -> str:
        """ZSET event id scored by creation time, for listing. Never expires."""
        return self._k("events", "index")

    def event_milestones(self, event_id: int | str) -> str:
        """HASH milestone name (declared, first_push, all_acknowledged, announcement_live,
        first_spike, first_alert, stood_down) -> ISO time it first happened for one event. Each
        field is written once (HSETNX), so the first time wins across processes. Never expires:
        the drill timing report and the after-action review read it."""
        return self._k("event", event_id, "milestones")

    # --- scripts -------------------------------------------------------------------

    def script_seq(self) -> str:
        """STRING counter: the last script id handed out (INCR). Never expires."""
        return self._k("seq", "script")

    def script(self, script_id: int | str) -> str:
        """HASH one script: id, group_id, language, event_id, expires_at, hazard, state,
        version (latest), live_version (last approved, "" if none), title, topic (of the latest
        version), created_by, created_at, updated_at, template (the hazard template key it was
        imported from, "" if none). Never expires."""
        return self._k("script", script_id)

    def script_versions(self, script_id: int | str) -> str:
        """HASH version number -> JSON {version, title, topic, body, state, authors,
        submitted_by, approved_by, created_at, updated_at}; version 1 of an imported script
        also has template {key, title, body}: the template text as filled. Every version is kept."""
        return self._k("script", script_id, "versions")

    def scripts_index(self) -> str:
        """ZSET script id scored by last change time (epoch seconds). Never expires."""
        return self._k("scripts", "index")

    def script_group(self, group_id: int | str) -> str:
        """HASH language -> script id: the translations of one script. Never expires."""
        return self._k("script_group", group_id)

    def scripts_expired(self) -> str:
        """SET "script id:expires_at" of the expiries already announced (SADD claims one, so
        one process announces each expiry once; a new expiry time is a new member). Never expires."""
        return self._k("scripts", "expired")

    # --- pushes --------------------------------------------------------------------

    def push_seq(self) -> str:
        """STRING counter: the deployment-wide push sequence (INCR); a push's id is its seq."""
        return self._k("seq", "push")

    def push(self, push_id: int | str) -> str:
        """HASH one push: id, seq, script_id, version, audience (JSON: "all" or team list),
        audience_size, payload (JSON script snapshot sent to agents), event_id (the script's
        event, "" if none), created_by, created_at, created_ms (ms since the epoch), connected
        (how many connected agent sockets the web processes sent it to, summed over them).
        Never expires: replays and the after-action review read it."""
        return self._k("push", push_id)

    def pushes_index(self) -> str:
        """ZSET push id scored by its seq, for replaying what an agent missed. Never expires."""
        return self._k("pushes", "index")

    def push_audience(self, push_id: int | str) -> str:
        """SET the agent user ids a push was addressed to (fixed at push time)."""
        return self._k("push", push_id, "audience")

    def push_delivered(self, push_id: int | str) -> str:
        """SET the agent user ids whose page received the push."""
        return self._k("push", push_id, "delivered")

    def push_received_at(self, push_id: int | str) -> str:
        """ZSET agent user id scored by when (server time, ms since the epoch) the push first
        reached that agent's page: the push's propagation times are read from it."""
        return self._k("push", push_id, "received_at")

    def push_acknowledged_at(self, push_id: int | str) -> str:
        """ZSET agent user id scored by when (server time, ms since the epoch) the agent
        pressed "Got it" on the push, first time only."""
        return self._k("push", push_id, "acknowledged_at")

    def push_acknowledged(self, push_id: int | str) -> str:
        """SET the agent user ids who pressed "Got it"."""
        return self._k("push", push_id, "acknowledged")

    # --- phone lines and announcements -------------------------------------------------

    def line_seq(self) -> str:
        """STRING counter: the last phone line id handed out (INCR). Never expires."""
        return self._k("seq", "line")

    def line(self, line_id: int | str) -> str:
        """HASH one phone line: id, number (E.164), name, route (JSON: type dial|enqueue|redirect
        and its target), languages (JSON list, first is the default), test_line ("1"/"0"),
        created_by, created_at. Never expires."""
        return self._k("line", line_id)

    def lines_index(self) -> str:
        """ZSET line id scored by creation time. Never expires."""
        return self._k("lines", "index")

    def lines_by_number(self) -> str:
        """HASH E.164 number -> line id: how a call's ``To`` finds its line. Never expires."""
        return self._k("lines", "by_number")

    def announcement_seq(self) -> str:
        """STRING counter: the last announcement id handed out (INCR). Never expires."""
        return self._k("seq", "announcement")

    def announcement(self, announcement_id: int | str) -> str:
        """HASH one surge announcement: id, line_id, messages (JSON language -> text), voice,
        audio_url, starts_at, ends_at, state (draft/in_review/approved/active/ended), authors
        (JSON), submitted_by, approved_by, activated_by, activated_at, ended_by, ended_at,
        event_id ("" if none), exercise ("1"/"0": may only be activated on a test line),
        created_by, created_at, follows (id of the announcement that plays until this one's
        starts_at, "" if none). Never expires."""
        return self._k("announcement", announcement_id)

    def announcements_index(self) -> str:
        """ZSET announcement id scored by last change time. Never expires."""
        return self._k("announcements", "index")

    def line_announcement(self, line_id: int | str) -> str:
        """STRING id of the announcement activated on a line (at most one; the one it follows,
        if any, keeps playing until its start). Deleted on end."""
        return self._k("line", line_id, "announcement")

    def announcement_stats(self, announcement_id: int | str) -> str:
        """HASH counters of one announcement: calls, heard, deflected, routed. Never expires."""
        return self._k("announcement", announcement_id, "stats")

    def ivr_version(self) -> str:
        """STRING counter bumped by every change to lines or active announcements; web
        processes keep answers for a number until it moves. Never expires."""
        return self._k("ivr", "version")

    def call(self, call_sid: str) -> str:
        """HASH one phone call's progress: announcement_id, line_id, language, outcome
        (routed/deflected, set once). Expires a day after the call started."""
        return self._k("call", call_sid)

    # --- complaints and trends -------------------------------------------------------

    def category(self, code: str) -> str:
        """HASH one complaint category: code, name, name_es, aliases (JSON), open311_code,
        hazards (JSON), status (active/retired/merged), merged_into, created_at. Never expires."""
        return self._k("category", code)

    def categories_index(self) -> str:
        """ZSET category code scored by creation time. Never expires."""
        return self._k("categories", "index")

    def category_names(self) -> str:
        """HASH lower-cased code, name or alias -> category code: how intake maps what people
        type to a category. Never expires."""
        return self._k("categories", "names")

    def complaints(self) -> str:
        """STREAM every accepted complaint: occurred_at, category, channel, zip, lat, lon, text,
        source, received_at. Never trimmed unless a retention setting says so."""
        return self._k("complaints")

    def trend_minute(self, minute: str) -> str:
        """HASH counts of one UTC minute (``YYYYMMDDHHMM``): ``total``, ``c:<category>``,
        ``z:<zip>``, ``cz:<category>:<zip>``. Never expires unless retention is set."""
        return self._k("trend", "m", minute)

    def trend_hour(self, hour: str) -> str:
        """HASH the same counts rolled up per UTC hour (``YYYYMMDDHH``), for long windows."""
        return self._k("trend", "h", hour)

    def sms_pending(self, phone: str) -> str:
        """STRING JSON {text, options} of a texter who was sent the category menu; expires
        after 30 minutes."""
        return self._k("sms", "pending", phone)

    def sms_opt_outs(self) -> str:
        """HASH E.164 number -> ISO time it texted STOP (or another carrier opt-out word):
        alerts never text it and replies go out only to HELP and START. The field is removed
        when the number texts START, UNSTOP or YES. Never expires."""
        return self._k("sms", "opt_outs")

    def sms_languages(self) -> str:
        """HASH E.164 number -> language code ("es", "en") the resident asked replies in by
        texting ES/ESPAÑOL or EN/ENGLISH; absent means "guess from each text". Never expires."""
        return self._k("sms", "languages")

    def spike_seen(self, category: str, zip_code: str) -> str:
        """STRING set (NX) when a spike of a category (and area) is first announced; expires
        after two hours, so an ongoing surge is announced once, a later one again."""
        return self._k("spike", "seen", category, zip_code or "-")

    def share_link(self, link_id: str) -> str:
        """HASH one dashboard share link: id, created_by, created_at, expires_at. Expires with
        the link; deleted when revoked, which ends every viewer's access at once."""
        return self._k("share", link_id)

    def share_links_index(self) -> str:
        """ZSET share-link id scored by expiry time (epoch), for listing the live ones."""
        return self._k("shares", "index")

    # --- agent flags ("I keep hearing about…") -----------------------------------------

    def flag_seq(self) -> str:
        """STRING counter: the last agent flag id handed out (INCR). Never expires."""
        return self._k("seq", "flag")

    def flag_group_seq(self) -> str:
        """STRING counter: the last flag group id handed out (INCR). Never expires."""
        return self._k("seq", "flag_group")

    def flag_group(self, group_id: int | str) -> str:
        """HASH one group of similar agent flags: id, text (the first flag's), texts (JSON list of
        the distinct wordings, at most 10), keys (JSON list of those wordings as compared), status (open/promoted/dismissed), first_at, last_at
        (ISO, of its flags), flags (how many were kept), category (code, once promoted),
        complaints (counted on promotion), closed_by, closed_at. Never expires (audit reads it)."""
        return self._k("flag_group", group_id)

    def flag_groups_index(self) -> str:
        """ZSET flag group id scored by its latest flag's time (epoch ms): the groups heard in a
        window, and the open ones a new flag is matched against. Never expires."""
        return self._k("flag_groups", "index")

    def flag_group_flags(self, group_id: int | str) -> str:
        """ZSET the flags of one group, each member JSON {id, user_id, text, category, zip, at},
        scored by when it was raised (epoch ms). Never expires: promotion counts every one."""
        return self._k("flag_group", group_id, "flags")

    # --- CAP (Common Alerting Protocol) ------------------------------------------------

    def cap_messages(self, subject: str) -> str:
        """LIST the CAP messages published about one subject (``event:<id>`` or
        ``announcement:<id>``), oldest first; item *n* is revision *n*+1 as JSON {revision,
        identifier, sender, sent, msg_type, status, fingerprint (of the content, to tell whether
        it changed), headline, event, severity, area_desc (for the feed's entries)}. Later
        messages name the earlier ones in ``references``. Never expires."""
        return self._k("cap", subject, "messages")

    def cap_documents(self, subject: str) -> str:
        """HASH revision number -> the CAP XML document exactly as published, so a message
        named in a later one's ``references`` can still be fetched. Never expires."""
        return self._k("cap", subject, "documents")

    def cap_received(self) -> str:
        """HASH JSON ``[sender, identifier]`` of every CAP alert accepted by the inbox -> JSON
        {received_at, received_by, msg_type, status, event_id (or null), outcome}; the
        duplicate check (set under WATCH with its audit entry). Never expires."""
        return self._k("cap", "received")

    # --- alerts ------------------------------------------------------------------

    def alert_seq(self) -> str:
        """STRING counter giving alert ids. Never expires."""
        return self._k("alerts", "seq")

    def alert(self, alert_id: int | str) -> str:
        """HASH one alert: id, rule_id, trigger, subject, message, exercise ("1"/"0"),
        created_at, steps_done (escalation steps taken), acknowledged_by, acknowledged_at.
        Never expires (the after-action review reads them)."""
        return self._k("alert", alert_id)

    def alerts_index(self) -> str:
        """ZSET alert id -> raised at (epoch seconds): the alerts page, newest first."""
        return self._k("alerts", "index")

    def alerts_escalating(self) -> str:
        """ZSET alert id -> raised at, for unacknowledged alerts whose rule has escalation steps
        left; removed on acknowledgement or when the last step is taken."""
        return self._k("alerts", "escalating")

    def alert_dedup(self, key: str) -> str:
        """STRING set (NX, expires after the rule's quiet period) when a rule first fires for a
        subject, so several processes seeing the same trigger raise one alert."""
        return self._k("alerts", "dedup", key)

    def alert_deliveries(self, alert_id: int | str) -> str:
        """LIST the delivery ids of one alert, in the order they were queued."""
        return self._k("alert", alert_id, "deliveries")

    def delivery_seq(self) -> str:
        """STRING counter giving delivery ids."""
        return self._k("deliveries", "seq")

    def delivery(self, delivery_id: int | str) -> str:
        """HASH one delivery: id, alert_id, channel, to, username, status (queued, sending,
        sent, delivered, failed), attempts, last_error, provider_id (Twilio's message SID),
        created_at, updated_at, next_attempt_at. Never expires."""
        return self._k("delivery", delivery_id)

    def delivery_queue(self) -> str:
        """STREAM of delivery ids to send ({delivery_id}), read by the consumer group
        ``senders``; an entry is acknowledged once its delivery is sent, failed for good, or
        parked for a retry. Trimmed to about 100,000 entries."""
        return self._k("deliveries", "queue")

    def delivery_retries(self) -> str:
        """ZSET delivery id -> when its next attempt is due (epoch seconds)."""
        return self._k("deliveries", "retries")

    def delivery_by_provider(self) -> str:
        """HASH provider message id (Twilio SID) -> delivery id, for status callbacks."""
        return self._k("deliveries", "by_provider")

    def delivery_lease(self, delivery_id: int | str) -> str:
        """STRING held (SET NX PX, a random token per attempt) by the worker sending one
        delivery; that worker renews it while its request is under way, and another worker
        takes the delivery over only once it has lapsed. Expires by itself (the lease time).

        The delivery's HASH (:meth:`delivery`) records each attempt for the next one to check:
        attempt_started_ms and first_attempt_ms (epoch ms), attempt_by (the worker),
        confirmed_by ("lookup" when a text found on Twilio was recorded instead of sent again)
        and response (a webhook's answer)."""
        return self._k("delivery", delivery_id, "lease")

    # --- background work -----------------------------------------------------------

    def scheduler_lock(self) -> str:
        """STRING held (SET NX EX) by the one process running a scheduler pass; expires by
        itself so a crashed holder never blocks the next pass."""
        return self._k("lock", "scheduler")

    # --- rate limiting -------------------------------------------------------------

    def rate_limits_prefix(self) -> str:
        """Prefix handed to Flask-Limiter for its own counter STRINGs (they expire with
        their window)."""
        return self._k("limits")

    # --- the category catalogue ------------------------------------------------------

    def catalogue_seeded(self) -> str:
        """STRING when the starter catalogue was seeded (ISO time; SET NX): a deployment is
        seeded once, so a category retired or merged afterwards does not come back. Never expires."""
        return self._k("categories", "seeded")

    def trend_pattern(self) -> str:
        """HASH glob: matches every minute and hour counter (:meth:`trend_minute`,
        :meth:`trend_hour`); scanned only when two categories are merged."""
        return self._k("trend", "*")

    # --- the public information page -------------------------------------------------

    def public_pages(self) -> str:
        """HASH the rendered public information page, replaced whole on each render:
        ``_render`` (a new id per render, which processes poll to know their copy is stale),
        ``_status`` (JSON: rendered_at, etag, scripts shown), ``_meta`` (JSON: per variant its
        etag, content hash, updated_at, media type and status) and one field per variant
        (``all.en.html``, ``event.3.es.html``, ``all.es.json``, ``gone.en.html``) holding its
        bytes as text. Never expires; rendered again on the first request when missing."""
        return self._k("public", "pages")

    def public_render_lock(self) -> str:
        """STRING held (SET NX EX, a random token) while one process renders the public page,
        so renders run one after another and the last one reads the latest state."""
        return self._k("public", "lock")

    # --- intake spooled during an outage --------------------------------------------

    def intake_once(self, message_id: str) -> str:
        """STRING the complaint stream id stored for one idempotency id (an SMS's
        ``sms:<MessageSid>``), set in the same script that appends the complaint, so a text
        answered live and spooled too, or replayed twice, is counted once. Expires after
        :data:`crisis_console.store.complaints.ONCE_SECONDS`."""
        return self._k("intake", "once", message_id)

    def sms_applied(self, message_id: str) -> str:
        """STRING (ISO time) set after a spooled keyword text (STOP, START, ES…) was applied,
        so a replay that runs again skips it. Expires with :meth:`intake_once`."""
        return self._k("sms", "applied", message_id)
