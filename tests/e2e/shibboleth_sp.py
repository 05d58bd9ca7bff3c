"""A Shibboleth SP 3 (shibd + mod_shib) configured for the end-to-end tests, and shibd run in the foreground.

:func:`write_service_provider` writes everything into one directory, with absolute paths
only (shibd resolves a relative path under /etc/shibboleth): shibboleth2.xml, the
attribute map and filter policy, the SP's key and certificate, the logging configs
(shibd.log and native.log, mod_shib's own, next to them) and the SP's metadata for the IdP.
Apache's ``SHIB_CONFIG`` points at the same shibboleth2.xml; mod_shib finds shibd's socket
through it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from stack import stop
from support import free_port, require_program

from .saml_idp import SamlIdP, certificate_body, make_key_pair, serving

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

#: The SP's entityID (one SP for every test server; they differ only in the port).
ENTITY_ID = "https://127.0.0.1/shibboleth"
#: The app's settings for Shibboleth, as docs/deployment.md gives them
APP_SETTINGS = {
    "SHIBWSGI_PROFILE": "shibboleth",
    "SHIBWSGI_USER": "eppn REMOTE_USER",
    "SHIBWSGI_ATTRIBUTES": "name=displayName email=mail groups=isMemberOf:multi",
}

BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"

#: The standard SAML 2 names (attribute-map.xml in the SP's distribution) -> the SP's ids.
ATTRIBUTE_MAP = """\
<Attributes xmlns="urn:mace:shibboleth:2.0:attribute-map" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.1.1.6" id="eppn">
        <AttributeDecoder xsi:type="ScopedAttributeDecoder"/>
    </Attribute>
    <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.1.1.9" id="affiliation">
        <AttributeDecoder xsi:type="ScopedAttributeDecoder" caseSensitive="false"/>
    </Attribute>
    <Attribute name="urn:oid:0.9.2342.19200300.100.1.3" id="mail"/>
    <Attribute name="urn:oid:2.16.840.1.113730.3.1.241" id="displayName"/>
    <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.5.1.1" id="isMemberOf"/>
</Attributes>
"""

#: Scoped attributes only from the IdP's own <shibmd:Scope>; the rest as released.
ATTRIBUTE_POLICY = """\
<AttributeFilterPolicyGroup xmlns="urn:mace:shibboleth:2.0:afp"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <PermitValueRule id="ScopingRules" xsi:type="AND">
        <Rule xsi:type="NOT"><Rule xsi:type="ValueRegex" regex="@"/></Rule>
        <Rule xsi:type="ScopeMatchesShibMDScope"/>
    </PermitValueRule>
    <AttributeFilterPolicy>
        <PolicyRequirementRule xsi:type="ANY"/>
        <AttributeRule attributeID="eppn"><PermitValueRuleReference ref="ScopingRules"/></AttributeRule>
        <AttributeRule attributeID="affiliation"><PermitValueRuleReference ref="ScopingRules"/></AttributeRule>
        <AttributeRule attributeID="mail" permitAny="true"/>
        <AttributeRule attributeID="displayName" permitAny="true"/>
        <AttributeRule attributeID="isMemberOf" permitAny="true"/>
    </AttributeFilterPolicy>
</AttributeFilterPolicyGroup>
"""

LOGGER = """\
log4j.rootCategory={level}, file
log4j.category.XMLTooling.XMLObject=WARN
log4j.category.XMLTooling.XMLObjectBuilder=WARN
log4j.category.XMLTooling.KeyInfoResolver=WARN
log4j.category.Shibboleth.PropertySet=WARN
log4j.category.Shibboleth-TRANSACTION=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.fileName={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{{%Y-%m-%d %H:%M:%S}} %p %c %x: %m%n
"""


@dataclass(frozen=True)
class ServiceProvider:
    folder: Path
    config: Path  # shibboleth2.xml, for shibd -c and Apache's SHIB_CONFIG
    socket: Path  # shibd's listener
    log: Path  # shibd's log
    native_log: Path  # mod_shib's log (written by Apache's children)
    metadata: str  # the SP's metadata, for the IdP


def write_service_provider(
    folder: Path, https_ports: Iterable[int], *, idp_entity_id: str, idp_metadata: Path
) -> ServiceProvider:
    """Write the SP's files into ``folder`` for Apache servers on ``https_ports``.

    Every port gets its own ACS and logout endpoints in the SP's metadata: the IdP only
    answers to endpoints it knows.
    """
    key, cert = folder / "sp-key.pem", folder / "sp-cert.pem"
    make_key_pair(key, cert, "127.0.0.1")
    (folder / "attribute-map.xml").write_text(ATTRIBUTE_MAP)
    (folder / "attribute-policy.xml").write_text(ATTRIBUTE_POLICY)
    log, native_log = folder / "shibd.log", folder / "native.log"
    (folder / "shibd.logger").write_text(LOGGER.format(level="INFO", log=log))
    (folder / "native.logger").write_text(LOGGER.format(level="WARN", log=native_log))
    # Apache's children (www-data when started as root) write mod_shib's log.
    native_log.touch()
    native_log.chmod(0o666)
    config = folder / "shibboleth2.xml"
    socket = folder / "shibd.sock"
    config.write_text(
        SHIBBOLETH2.format(
            folder=folder,
            socket=socket,
            entity_id=ENTITY_ID,
            idp_entity_id=escape(idp_entity_id),
            idp_metadata=idp_metadata,
            key=key,
            cert=cert,
        )
    )
    return ServiceProvider(
        folder, config, socket, log, native_log, sp_metadata(ENTITY_ID, cert, sorted(https_ports))
    )


SHIBBOLETH2 = """\
<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config"
    xmlns:conf="urn:mace:shibboleth:3.0:native:sp:config" clockSkew="180">
    <OutOfProcess logger="{folder}/shibd.logger"/>
    <InProcess logger="{folder}/native.logger"/>
    <UnixListener address="{socket}"/>

    <ApplicationDefaults entityID="{entity_id}" REMOTE_USER="eppn subject-id pairwise-id persistent-id">
        <Sessions lifetime="28800" timeout="3600" relayState="ss:mem" checkAddress="false"
                  handlerSSL="true" cookieProps="https" redirectLimit="exact">
            <SSO entityID="{idp_entity_id}">SAML2</SSO>
            <Logout>SAML2 Local</Logout>
            <Handler type="Status" Location="/Status" acl="127.0.0.1 ::1"/>
            <Handler type="Session" Location="/Session" showAttributeValues="true"/>
        </Sessions>
        <Errors supportContact="root@localhost" helpLocation="/about.html" styleSheet="/shibboleth-sp/main.css"/>
        <MetadataProvider type="XML" validate="true" path="{idp_metadata}"/>
        <AttributeExtractor type="XML" validate="true" reloadChanges="false" path="{folder}/attribute-map.xml"/>
        <AttributeFilter type="XML" validate="true" path="{folder}/attribute-policy.xml"/>
        <CredentialResolver type="File" key="{key}" certificate="{cert}"/>
    </ApplicationDefaults>

    <SecurityPolicyProvider type="XML" validate="true" path="/etc/shibboleth/security-policy.xml"/>
    <ProtocolProvider type="XML" validate="true" reloadChanges="false" path="/etc/shibboleth/protocols.xml"/>
</SPConfig>
"""


def sp_metadata(entity_id: str, cert: Path, https_ports: list[int]) -> str:
    """The SP's metadata, as /Shibboleth.sso/Metadata would give it, with an endpoint per port."""
    origins = [f"https://127.0.0.1:{port}/Shibboleth.sso" for port in https_ports]
    logout = "".join(
        f'    <md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location="{origin}/SLO/Redirect"/>\n'
        for origin in origins
    )
    consumers = "".join(
        f'    <md:AssertionConsumerService Binding="{BINDING_POST}" Location="{origin}/SAML2/POST"'
        f' index="{index}"/>\n'
        for index, origin in enumerate(origins, start=1)
    )
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor>
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate_body(cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
{logout}    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>
{consumers}  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


@contextlib.contextmanager
def running_shibd(sp: ServiceProvider, *, timeout: float = 30) -> Iterator[None]:
    """``shibd -F -f`` (foreground, stale socket removed) until its socket exists; stopped on exit.

    On exit it waits for shibd to end: it removes its socket then, and a shibd started
    meanwhile on the same socket would lose it.
    """
    shibd = require_program("shibd", "libapache2-mod-shib")
    pid = sp.folder / "shibd.pid"
    output = sp.folder / "shibd-stdout.log"
    with output.open("wb") as stream:
        process = subprocess.Popen(
            [shibd, "-F", "-f", "-c", str(sp.config), "-p", str(pid)],
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    try:
        deadline = time.monotonic() + timeout
        while not sp.socket.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"shibd did not open {sp.socket} (exit code {process.poll()}):\n"
                    f"{output.read_text(errors='replace')[-3000:]}\n{sp.log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.05)
        yield
    finally:
        stop(process)


@contextlib.contextmanager
def running_federation(folder: Path, https_ports: Iterable[int]) -> Iterator[tuple[SamlIdP, ServiceProvider]]:
    """The test IdP (served) and shibd for Apache servers on ``https_ports``, their files in ``folder``."""
    require_program("xmlsec1", "xmlsec1")  # pysaml2 signs with it
    idp = SamlIdP(folder, free_port())
    sp = write_service_provider(folder, https_ports, idp_entity_id=idp.entity_id, idp_metadata=idp.metadata)
    idp.trust(sp.metadata)
    with serving(idp), running_shibd(sp):
        yield idp, sp
