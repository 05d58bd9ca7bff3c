-- The client's share of the uwsgi packet (docs/deployment.md, "The uwsgi packet budget").
--
-- mod_proxy_uwsgi sends every request header to uWSGI again as a variable, HTTP_NAME, in one
-- packet of at most 65535 bytes that the identity shares; past it Apache answers 500 itself
-- (AH10259). Apache bounds each header line (LimitRequestFieldSize) and their number
-- (LimitRequestFields), not their total: this hook does, before any authentication module
-- runs, with a 431 that says what happened (header_budget).
--
-- The identity is not bounded by anything the client sends: a provider may assert 40 KB of
-- groups. After authentication, packet_budget estimates the whole packet (the headers, the
-- variables the auth module and mod_ssl have set, and what mod_proxy_uwsgi adds) and answers
-- 431 itself when it would not fit, instead of Apache's 500.
--
-- A header costs what it takes in the packet: name + value + 9 (HTTP_ and two 2-byte
-- lengths); a variable name + value + 4. Apache has already merged repeated headers into one
-- line, as they travel.

--- Most bytes the client's headers may take in the packet, Host and Cookie included.
local BUDGET = 32768

--- Largest uwsgi packet (16-bit size field), less a margin for the estimate's slack.
local PACKET = 65535 - 256

--- What mod_proxy_uwsgi adds when it sends the request (ap_add_common_vars, ap_add_cgi_vars)
--- besides the request target: SERVER_*, REMOTE_*, DOCUMENT_ROOT, SCRIPT_FILENAME's prefix...
--- Measured at about 500 bytes with the shipped configs (tests/e2e/test_packet_budget.py);
--- a longer ServerName, DocumentRoot or uWSGI socket path takes more.
local SERVER_VARIABLES = 1024

local MESSAGE = [[
431 Request Header Fields Too Large

This request's headers take %d bytes; this site accepts at most %d in all.
Cookies are the usual cause: clear this site's cookies (and those of its parent domain)
and try again.
]]

local IDENTITY_MESSAGE = [[
431 Request Header Fields Too Large

Your sign-in carries too much information for this site, together with what your browser
sends: usually membership in very many groups, sometimes many cookies. Clearing this site's
cookies (and those of its parent domain) may help; otherwise ask the site's administrators.
]]

local function headers_cost(r)
    local total = 0
    for name, value in pairs(r:headers_in_table()) do
        total = total + #name + #value + 9
    end
    return total
end

local function refuse(r, body)
    r.status = 431
    r.content_type = "text/plain; charset=utf-8"
    r:puts(body)
    return apache2.DONE
end

function header_budget(r)
    local total = headers_cost(r)
    if total <= BUDGET then
        return apache2.DECLINED
    end
    r:info(string.format("header budget: headers take %d bytes, over %d: 431", total, BUDGET))
    return refuse(r, string.format(MESSAGE, total, BUDGET))
end

--- Whether this process has said that mod_shib's variables come after this hook.
local warned_shib_order = false

--- mod_shib copies its variables in its own fixups hook, which runs before this one only if
--- mod_shib was loaded first: say so once rather than count a session without its attributes.
local function check_shib_order(r, environment)
    if warned_shib_order or r.user == nil or environment["Shib-Session-ID"] ~= nil
        or string.lower(r.ap_auth_type or "") ~= "shibboleth" then
        return
    end
    warned_shib_order = true
    r:warn("packet budget: mod_shib's variables are not set yet when header-budget.lua's "
        .. "packet_budget runs, so it cannot count them: load mod_shib before mod_lua "
        .. "(LoadModule order; with Debian's a2enmod, load mod_lua from this config instead)")
end

--- The whole packet, once the auth module has set its variables (LuaHookFixups).
function packet_budget(r)
    local headers = headers_cost(r)
    local environment = r:subprocess_env_table()
    check_shib_order(r, environment)
    local variables = 0
    for name, value in pairs(environment) do
        variables = variables + #name + #value + 4
    end
    -- Added when the request is sent: REMOTE_USER, AUTH_TYPE and the server's PATH, whatever
    -- their length; the target as REQUEST_URI, PATH_INFO and in SCRIPT_FILENAME, the query in
    -- QUERY_STRING too (three copies cover it); the rest within SERVER_VARIABLES.
    local sent = #(r.user or "") + 15 + #(r.ap_auth_type or "") + 13 + #(os.getenv("PATH") or "") + 8
    local target = 3 * #r.unparsed_uri
    local total = headers + variables + sent + target + SERVER_VARIABLES
    if total <= PACKET then
        return apache2.DECLINED
    end
    r:warn(string.format(
        "packet budget: the uwsgi packet would take about %d bytes, over %d (client headers %d, "
            .. "variables set by the auth module and the server %d, request target %d x 3, "
            .. "server variables %d): 431. Filter attributes at the SP/IdP (fewer groups, "
            .. "claims passed once)",
        total, PACKET, headers, variables, #r.unparsed_uri, sent + SERVER_VARIABLES))
    return refuse(r, IDENTITY_MESSAGE)
end
