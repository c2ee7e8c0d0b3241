
-- Appended to prosody.cfg.lua for the pep scenario of
-- tools/bench/bench-peers (lines after VirtualHost belong to that host):
-- the base modules plus mod_pep, which follows each contact's XEP-0115
-- caps for +notify (it asks the first client of a 'ver' with disco#info).
	modules_enabled = { "roster", "saslauth", "disco", "ping", "register", "posix", "pep" }
	-- One PEP service and one caps record per user stay cached (the
	-- defaults, 1,000 and 10,000, would make the 1,100 publishers load
	-- their services from storage over and over).
	pep_service_cache_size = 100000
	pep_info_cache_size = 100000
