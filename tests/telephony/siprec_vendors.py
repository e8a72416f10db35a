"""SIPREC offers as SBCs and platforms send them, one per behaviour the recorder must handle.

Each message here was written for these tests from RFC 7865 and RFC 7866 and from what the
vendors document of their SIPREC format; the numbers, names and ids are invented. A `Vendor`
holds the metadata and the SDP of the first offer, what the recorder must make of it, and
the metadata of later updates where the behaviour needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RFC = "urn:ietf:params:xml:ns:recording:1"
DRAFT = "urn:ietf:params:xml:ns:recording"
BROADWORKS = "urn:ietf:params:xml:ns:siprec"


@dataclass(frozen=True)
class MLine:
    label: str
    direction: str = "sendonly"
    connection: str = "127.0.0.1"
    port: int = 30000


def sdp(mlines: list[MLine], version: int = 1) -> str:
    """An SRC's offer: PCMU (and telephone-event) per m-line, each with its label."""
    lines = ["v=0", f"o=SRC 8812 {version} IN IP4 127.0.0.1", "s=SIPREC", "t=0 0"]
    for i, m in enumerate(mlines):
        port = 0 if m.port == 0 else m.port + 2 * i
        lines += [
            f"m=audio {port} RTP/AVP 0 101", f"c=IN IP4 {m.connection}",
            "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15", f"a=label:{m.label}", f"a={m.direction}",
        ]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class Vendor:
    name: str
    metadata: str
    mlines: list[MLine]
    taken_labels: list[str]
    """Labels of the streams the recorder must take, in m-line order."""
    roles: dict[str, str]
    """Label → role (agent, customer, mixed)."""
    agent_id: str | None
    caller: str | None = None
    callee: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    rejected: int = 0
    dialect: str = "rfc7865"


# Oracle (Acme Packet) SBC recording a Genesys call: the draft namespace with Acme's
# extension data, four m-lines (each party's stream, and an inactive second one each).
ORACLE_GENESYS = Vendor(
    name="oracle-genesys-4-mlines",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{DRAFT}">
  <datamode>complete</datamode>
  <session id="bN4c0+2eTnWqv1sA7y3KpA==">
    <associate-time>2026-11-22T10:15:00Z</associate-time>
  </session>
  <participant id="Qm1x7Zq2R3mV0aH9c8kL5g==" session="bN4c0+2eTnWqv1sA7y3KpA==">
    <nameID aor="sip:+8613912345678@carrier.example.cn"><name>Customer</name></nameID>
    <send>s-one</send><send>s-two</send><recv>s-three</recv>
    <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:callingParty>true</apkt:callingParty>
    </extensiondata>
  </participant>
  <participant id="Zt8e2Lk4S9yA1bN6d0fM3w==" session="bN4c0+2eTnWqv1sA7y3KpA==">
    <nameID aor="sip:1401@genesys.example.cn"><name>1401</name></nameID>
    <send>s-three</send><send>s-four</send><recv>s-one</recv>
    <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:callingParty>false</apkt:callingParty>
    </extensiondata>
  </participant>
  <stream id="s-one" session="bN4c0+2eTnWqv1sA7y3KpA=="><label>11</label></stream>
  <stream id="s-two" session="bN4c0+2eTnWqv1sA7y3KpA=="><label>12</label></stream>
  <stream id="s-three" session="bN4c0+2eTnWqv1sA7y3KpA=="><label>13</label></stream>
  <stream id="s-four" session="bN4c0+2eTnWqv1sA7y3KpA=="><label>14</label></stream>
  <extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
    <apkt:ucid>00FA0800AB12CD34;encoding=hex</apkt:ucid>
  </extensiondata>
</recording>
""",
    mlines=[MLine("11"), MLine("12", "inactive"), MLine("13"), MLine("14", "inactive")],
    taken_labels=["11", "13"],
    roles={"11": "customer", "13": "agent"},
    agent_id="1401",
    caller="sip:+8613912345678@carrier.example.cn",
    callee="sip:1401@genesys.example.cn",
    identifiers={"ucid": "00FA0800AB12CD34;encoding=hex"},
    dialect="pre-rfc",
)

# BroadWorks / Webex Calling: <recording_metadata> in the siprec namespace, dataMode spelt
# so, group and session references; recording is paused with c=IN IP4 0.0.0.0.
BROADWORKS_PAUSE = Vendor(
    name="broadworks-pause-c0",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording_metadata xmlns="{BROADWORKS}">
  <dataMode>complete</dataMode>
  <group id="grp-55f1">
    <associate-time>2026-11-22T10:20:00Z</associate-time>
  </group>
  <session id="sess-55f1">
    <group-ref>grp-55f1</group-ref>
    <sipSessionID>9a0c3e771b2d4f6a8c1e3b5d7f9a1c3e</sipSessionID>
  </session>
  <participant id="part-a" session="sess-55f1">
    <nameID aor="sip:+15125550147@as.broadworks.example"><name>Caller</name></nameID>
    <send>stm-a</send>
  </participant>
  <participant id="part-b" session="sess-55f1">
    <nameID aor="sip:1202@as.broadworks.example"><name>Agent 1202</name></nameID>
    <send>stm-b</send>
  </participant>
  <stream id="stm-a" session="sess-55f1"><label>1</label></stream>
  <stream id="stm-b" session="sess-55f1"><label>2</label></stream>
</recording_metadata>
""",
    mlines=[MLine("1"), MLine("2")],
    taken_labels=["1", "2"],
    roles={"1": "customer", "2": "agent"},
    agent_id="1202",
    caller="sip:+15125550147@as.broadworks.example",
    callee="sip:1202@as.broadworks.example",
    identifiers={"sip_session_id": "9a0c3e771b2d4f6a8c1e3b5d7f9a1c3e"},
    dialect="siprec",
)

# Avaya SBCE: one stream (the caller's side only) and a placeholder <stream> with an empty
# stream_id. Nobody matches the agent patterns: the default side (callee) is the agent, so
# the one stream, sent by the caller, is the customer's.
AVAYA_SINGLE = Vendor(
    name="avaya-single-placeholder",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="YXZheWEtc2Vzc2lvbi0x">
    <sipSessionID>c0ffee0011223344;remote=aabbccdd00112233</sipSessionID>
  </session>
  <participant participant_id="cGFydHktY2FsbGVy">
    <nameID aor="sip:+442079460123@sbce.example.co.uk"><name>Caller</name></nameID>
  </participant>
  <participant participant_id="cGFydHktY2FsbGVl">
    <nameID aor="sip:agent.jones@cm.example.co.uk"><name>Jones</name></nameID>
  </participant>
  <stream stream_id="c3RyZWFtLTE=" session_id="YXZheWEtc2Vzc2lvbi0x"><label>1</label></stream>
  <stream stream_id="" session_id="YXZheWEtc2Vzc2lvbi0x"><label>2</label></stream>
  <participantstreamassoc participant_id="cGFydHktY2FsbGVy">
    <send>c3RyZWFtLTE=</send>
  </participantstreamassoc>
</recording>
""",
    mlines=[MLine("1")],
    taken_labels=["1"],
    roles={"1": "customer"},
    agent_id="agent.jones",
    caller="sip:+442079460123@sbce.example.co.uk",
    callee="sip:agent.jones@cm.example.co.uk",
    rejected=1,
)

# Metaswitch: one mixed stream that both parties send.
METASWITCH_MIXED = Vendor(
    name="metaswitch-mixed",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="bWl4ZWQtc2Vzc2lvbg=="/>
  <participant participant_id="bXMtYQ==">
    <nameID aor="tel:+13125550199"/>
  </participant>
  <participant participant_id="bXMtYg==">
    <nameID aor="sip:1777@cfs.example.net"/>
  </participant>
  <stream stream_id="bWl4" session_id="bWl4ZWQtc2Vzc2lvbg=="><label>mix</label></stream>
  <participantstreamassoc participant_id="bXMtYQ=="><send>bWl4</send></participantstreamassoc>
  <participantstreamassoc participant_id="bXMtYg=="><send>bWl4</send></participantstreamassoc>
</recording>
""",
    mlines=[MLine("mix")],
    taken_labels=["mix"],
    roles={"mix": "mixed"},
    agent_id="1777",
    caller="tel:+13125550199",
    callee="sip:1777@cfs.example.net",
)

# Ribbon (Sonus) SBC: the draft namespace with the call's data, and the GCID call centers
# match calls by, in the group's extension data.
RIBBON_GCID = Vendor(
    name="ribbon-group-gcid",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{DRAFT}">
  <datamode>complete</datamode>
  <group id="7f3a2c10">
    <associate-time>2026-11-22T10:30:00Z</associate-time>
    <extensiondata xmlns:sonus="http://www.sonusnet.com/siprec/1">
      <sonus:callData>
        <sonus:gcid>418827301</sonus:gcid>
        <sonus:callingNumber>+61290001234</sonus:callingNumber>
      </sonus:callData>
    </extensiondata>
  </group>
  <session id="c2Vzcy1yYm4="><group-ref>7f3a2c10</group-ref></session>
  <participant id="rbn-1" session="c2Vzcy1yYm4=">
    <nameID aor="sip:+61290001234@sbc.example.com.au"/><send>rs1</send>
  </participant>
  <participant id="rbn-2" session="c2Vzcy1yYm4=">
    <nameID aor="sip:1650@pbx.example.com.au"/><send>rs2</send>
  </participant>
  <stream id="rs1" session="c2Vzcy1yYm4="><label>a1</label></stream>
  <stream id="rs2" session="c2Vzcy1yYm4="><label>a2</label></stream>
</recording>
""",
    mlines=[MLine("a1"), MLine("a2")],
    taken_labels=["a1", "a2"],
    roles={"a1": "customer", "a2": "agent"},
    agent_id="1650",
    caller="sip:+61290001234@sbc.example.com.au",
    callee="sip:1650@pbx.example.com.au",
    identifiers={"gcid": "418827301", "callingNumber": "+61290001234"},
    dialect="pre-rfc",
)

# OpenSIPS (and some Cisco set-ups): participants are named but not who sends what. The
# agent patterns pick the agent among the participants; m-line order gives the streams.
OPENSIPS_NO_SEND = Vendor(
    name="opensips-no-send",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="b3BlbnNpcHM="/>
  <participant participant_id="b3MtMQ==">
    <nameID aor="sip:1310@pbx.example.org"/>
  </participant>
  <participant participant_id="b3MtMg==">
    <nameID aor="sip:+4930123456@gw.example.org"/>
  </participant>
  <stream stream_id="b3Mtcy0x" session_id="b3BlbnNpcHM="><label>0</label></stream>
  <stream stream_id="b3Mtcy0y" session_id="b3BlbnNpcHM="><label>1</label></stream>
</recording>
""",
    mlines=[MLine("0"), MLine("1")],
    taken_labels=["0", "1"],
    roles={"0": "agent", "1": "customer"},  # the agent is listed first: the caller
    agent_id="1310",
    caller="sip:1310@pbx.example.org",
    callee="sip:+4930123456@gw.example.org",
)

# Cisco CUBE: RFC 7865 with the Session-ID folded over two lines in <sipSessionID>; the
# call is later transferred by a metadata-only UPDATE (see CISCO_TRANSFER_*).
CISCO_FOLDED = Vendor(
    name="cisco-folded-session-id",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="Y3ViZS1zZXNz">
    <sipSessionID>2b3c4d5e6f708192a3b4c5d6e7f80912;
        remote=0000000000000000000000000000000a</sipSessionID>
  </session>
  <participant participant_id="Y3ViZS1h">
    <nameID aor="sip:+12125550100@cube.example.com"/>
  </participant>
  <participant participant_id="Y3ViZS1i">
    <nameID aor="sip:1818@cucm.example.com"/>
  </participant>
  <stream stream_id="Y3MtMQ==" session_id="Y3ViZS1zZXNz"><label>1</label></stream>
  <stream stream_id="Y3MtMg==" session_id="Y3ViZS1zZXNz"><label>2</label></stream>
  <participantstreamassoc participant_id="Y3ViZS1h">
    <send>Y3MtMQ==</send><recv>Y3MtMg==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="Y3ViZS1i">
    <send>Y3MtMg==</send><recv>Y3MtMQ==</recv>
  </participantstreamassoc>
</recording>
""",
    mlines=[MLine("1"), MLine("2")],
    taken_labels=["1", "2"],
    roles={"1": "customer", "2": "agent"},
    agent_id="1818",
    caller="sip:+12125550100@cube.example.com",
    callee="sip:1818@cucm.example.com",
    identifiers={
        "sip_session_id": "2b3c4d5e6f708192a3b4c5d6e7f80912;remote=0000000000000000000000000000000a"
    },
)

# A partial update: the agent's participant now has another address (a transfer to 1819).
CISCO_TRANSFER_PARTIAL = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>partial</datamode>
  <participant participant_id="Y3ViZS1i">
    <nameID aor="sip:1819@cucm.example.com"/>
  </participant>
</recording>
"""

# A complete snapshot: a new agent participant sends the agent's stream; the old one is gone.
CISCO_TRANSFER_COMPLETE = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="Y3ViZS1zZXNz"/>
  <participant participant_id="Y3ViZS1h">
    <nameID aor="sip:+12125550100@cube.example.com"/>
  </participant>
  <participant participant_id="Y3ViZS1j">
    <nameID aor="sip:1820@cucm.example.com"/>
  </participant>
  <stream stream_id="Y3MtMQ==" session_id="Y3ViZS1zZXNz"><label>1</label></stream>
  <stream stream_id="Y3MtMg==" session_id="Y3ViZS1zZXNz"><label>2</label></stream>
  <participantstreamassoc participant_id="Y3ViZS1h"><send>Y3MtMQ==</send></participantstreamassoc>
  <participantstreamassoc participant_id="Y3ViZS1j"><send>Y3MtMg==</send></participantstreamassoc>
</recording>
"""

# AudioCodes-style: recording starts paused (both streams a=inactive) and the call ends
# before it is resumed: a call with no audio.
STARTS_PAUSED = Vendor(
    name="starts-paused-no-audio",
    metadata=f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="YWMtc2Vzcw=="/>
  <participant participant_id="YWMtMQ==">
    <nameID aor="sip:+3312345678@sbc.example.fr"/>
  </participant>
  <participant participant_id="YWMtMg==">
    <nameID aor="sip:1555@ipbx.example.fr"/>
  </participant>
  <stream stream_id="YWMtcy0x" session_id="YWMtc2Vzcw=="><label>1</label></stream>
  <stream stream_id="YWMtcy0y" session_id="YWMtc2Vzcw=="><label>2</label></stream>
  <participantstreamassoc participant_id="YWMtMQ=="><send>YWMtcy0x</send></participantstreamassoc>
  <participantstreamassoc participant_id="YWMtMg=="><send>YWMtcy0y</send></participantstreamassoc>
</recording>
""",
    mlines=[MLine("1", "inactive"), MLine("2", "inactive")],
    taken_labels=["1", "2"],
    roles={"1": "customer", "2": "agent"},
    agent_id="1555",
    caller="sip:+3312345678@sbc.example.fr",
    callee="sip:1555@ipbx.example.fr",
)

VENDORS = (
    ORACLE_GENESYS, BROADWORKS_PAUSE, AVAYA_SINGLE, METASWITCH_MIXED, RIBBON_GCID,
    OPENSIPS_NO_SEND, CISCO_FOLDED, STARTS_PAUSED,
)  # fmt: skip
AGENT_PATTERNS = "1000-1999"
