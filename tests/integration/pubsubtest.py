"""Shared helpers of the PubSub tests (test-pubsub*.py, test-pep*.py):
raw stanzas for the exact forms and errors of XEP-0060, and a restart of
a running meerkatd on its own state. Standard library only."""
import os
import socket
import subprocess
import time

from modtest import NS_CLIENT, TOP_BUILDDIR, q

NS = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS + "#owner"
NS_EVENT = NS + "#event"
NS_ERRORS = NS + "#errors"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_XDATA = "jabber:x:data"
SERVICE = "pubsub.localhost"


def form(form_type, fields, type="submit"):
    """A data form: {var: value or [values]}."""
    out = "<x xmlns='%s' type='%s'><field var='FORM_TYPE' type='hidden'><value>%s</value>" \
          "</field>" % (NS_XDATA, type, form_type)
    for var, v in fields.items():
        vals = v if isinstance(v, list) else [v]
        out += "<field var='%s'>%s</field>" % (var, "".join("<value>%s</value>" % x for x in vals))
    return out + "</x>"


def node_config(**fields):
    return form(NS + "#node_config", {"pubsub#" + k: v for k, v in fields.items()})


def publish_options(**fields):
    return form(NS + "#publish-options", {("pubsub#" + k if not k.startswith("_") else k[1:]): v
                                          for k, v in fields.items()})


def ps(body):
    return "<pubsub xmlns='%s'>%s</pubsub>" % (NS, body)


def owner(body):
    return "<pubsub xmlns='%s'>%s</pubsub>" % (NS_OWNER, body)


def app_error(el):
    """The pubsub#errors condition of an error reply, or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_ERRORS):
            return child.tag.split("}")[1]
    return None


def publish(c, node, payload, item_id=None, options="", to=SERVICE):
    attr = " id='%s'" % item_id if item_id else ""
    po = "<publish-options>%s</publish-options>" % options if options else ""
    return c.iq(ps("<publish node='%s'><item%s>%s</item></publish>%s" % (node, attr, payload, po)),
                "set", to=to)


def items(c, node, extra="", inner="", to=SERVICE):
    res = c.iq(ps("<items node='%s'%s>%s</items>" % (node, extra, inner)), to=to)
    its = res.find(q(NS, "pubsub"))
    its = its.find(q(NS, "items")) if its is not None else None
    return res, ([i.get("id") for i in its.findall(q(NS, "item"))] if its is not None else None)


def is_event(node=None, child=None, frm=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        ev = e.find(q(NS_EVENT, "event"))
        if ev is None:
            return False
        if frm and e.get("from") != frm:
            return False
        for c in ev:
            if (child is None or c.tag == q(NS_EVENT, child)) and \
                    (node is None or c.get("node") == node):
                return True
        return False
    return pred


def restart(srv):
    """Stops meerkatd and starts it again on the same configuration and
    storage."""
    srv.restart()
