
-- Appended to prosody.cfg.lua for the muc scenario of
-- tools/bench/bench-peers: XEP-0045 rooms on conference.localhost, as
-- Meerkat's mod_muc serves them.
Component "conference.localhost" "muc"
	-- Any local user may create a room (the scenario's first occupant
	-- of each room does, then accepts the instant configuration).
	restrict_room_creation = false
	-- Meerkat's and ejabberd's rooms keep 20 messages of history; so does
	-- Prosody by default (said here because it changes the figures).
	muc_room_default_history_length = 20
	-- Rooms kept in memory (default 100): the scenario's rooms and the
	-- idle-room measurement must not be evicted to disk and back.
	muc_room_cache_size = 200000
