"""An otp.send through pasarela, its result event, then the code verified by RPC (Python, pika).

AMQP_URL (default the local broker); PASARELA_NAMESPACE prefixes every name when set; VENDOR_SIM_URL
reads the code from the vendor simulator's inbox, where a real user would type it. Exits 0 only when the
code is verified. Publishing rules: docs/CONTRACT.md.
"""
import json, os, random, sys, time, urllib.request, uuid

import pika

NS = os.environ.get("PASARELA_NAMESPACE", "")
name = lambda n: f"{NS}.{n}" if NS else n
conn = pika.BlockingConnection(pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")))
ch = conn.channel()
ch.confirm_delivery()  # every publish below waits for the broker's confirm, and raises without it
got = []
# Results: a queue of our own bound to pasarela.events (pasarela's own queues are never declared here).
events = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(events, name("pasarela.events"), routing_key="otp.send.completed")
ch.basic_consume(events, lambda c, m, p, body: got.append(json.loads(body)), auto_ack=True)
# RPC replies come on direct reply-to, consumed before anything is published to it.
ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, body: got.append((p.correlation_id, json.loads(body))), auto_ack=True)

def publish(queue, message_id, body, **props):
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    properties = pika.BasicProperties(message_id=message_id, content_type="application/json", delivery_mode=2,
                                      headers={"traceparent": traceparent}, **props)
    ch.basic_publish(name("pasarela"), queue, json.dumps(body).encode(), properties, mandatory=True)
    return traceparent

def wait_for(match, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for item in got:
            if match(item):
                return item
        conn.process_data_events(time_limit=0.2)
    sys.exit("no answer in time")

request_id, mobile = str(uuid.uuid4()), "+57300" + "".join(random.choices("0123456789", k=7))
traceparent = publish("otp.send", request_id, {  # message_id = request_id: publishing twice is safe
    "request_id": request_id, "tenant": "acme", "provider": "danaconnect", "channel": "sms",
    "destination": {"mobile": mobile}, "code": {"type": "numeric", "length": 6, "expires_in_s": 300},
    "danaconnect": {"id_conversation": 824541, "values": [{"key": "COD1_MOBILE", "value": mobile}]}})
print("published otp.send", request_id, "traceparent", traceparent)
sent = wait_for(lambda e: isinstance(e, dict) and e.get("request_id") == request_id)
print("otp.send.completed", json.dumps(sent))
if sent["status"] != "sent":
    sys.exit(1)

if os.environ.get("VENDOR_SIM_URL"):
    with urllib.request.urlopen(f"{os.environ['VENDOR_SIM_URL']}/sim/inbox?to={mobile.replace('+', '%2B')}") as r:
        code = json.load(r)[-1]["code"]
else:
    code = input("code: ").strip()
verification_id = str(uuid.uuid4())
publish("otp.verify", verification_id, {"verification_id": verification_id, "request_id": request_id, "code": code},
        reply_to="amq.rabbitmq.reply-to", correlation_id=verification_id)
_, reply = wait_for(lambda r: isinstance(r, tuple) and r[0] == verification_id)
print("otp.verify reply", json.dumps(reply))
conn.close()
sys.exit(0 if reply.get("outcome") == "verified" else 1)
