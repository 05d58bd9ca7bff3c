-- The client's share of the uwsgi packet (docs/deployment.md, "The uwsgi packet budget").
--
-- mod_proxy_uwsgi sends every request header to uWSGI again as a variable, HTTP_NAME, in one
-- packet of at most 65535 bytes that the identity shares; past it Apache answers 500 itself
-- (AH10259). Apache bounds each header line (LimitRequestFieldSize) and their number
-- (LimitRequestFields), not their total: this hook does, before any authentication module
-- runs, with a 431 that says what happened.
--
-- A header costs what it takes in the packet: name + value + 9 (HTTP_ and two 2-byte
-- lengths). Apache has already merged repeated headers into one line, as they travel.

--- Most bytes the client's headers may take in the packet, Host and Cookie included.
local BUDGET = 32768

local MESSAGE = [[
431 Request Header Fields Too Large

This request's headers take %d bytes; this site accepts at most %d in all.
Cookies are the usual cause: clear this site's cookies (and those of its parent domain)
and try again.
]]

function header_budget(r)
    local total = 0
    for name, value in pairs(r:headers_in_table()) do
        total = total + #name + #value + 9
    end
    if total <= BUDGET then
        return apache2.DECLINED
    end
    r:info(string.format("header budget: headers take %d bytes, over %d: 431", total, BUDGET))
    r.status = 431
    r.content_type = "text/plain; charset=utf-8"
    r:puts(string.format(MESSAGE, total, BUDGET))
    return apache2.DONE
end
