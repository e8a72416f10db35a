"""Calls that reach the box through telephony (the SIP recorder, pcap imports), scored
and stored by core."""
