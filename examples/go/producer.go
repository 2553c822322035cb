// An otp.send through pasarela, its result event, then the code verified by RPC (Go, amqp091-go).
//
// AMQP_URL (default the local broker); PASARELA_NAMESPACE prefixes every name when set; VENDOR_SIM_URL
// reads the code from the vendor simulator's inbox, where a real user would type it. Exits 0 only when
// the code is verified. Publishing rules: docs/CONTRACT.md.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func hexOf(n int) string { b := make([]byte, n); rand.Read(b); return hex.EncodeToString(b) }

func uuid() string {
	h := hexOf(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

func main() {
	ns := os.Getenv("PASARELA_NAMESPACE")
	name := func(n string) string {
		if ns == "" {
			return n
		}
		return ns + "." + n
	}
	amqpURL := os.Getenv("AMQP_URL")
	if amqpURL == "" {
		amqpURL = "amqp://guest:guest@127.0.0.1:5672/%2f"
	}
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if err := ch.Confirm(false); err != nil {
		log.Fatal(err)
	} // every publish waits for the broker's confirm
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	// Results: a queue of our own bound to pasarela.events (pasarela's own queues are never declared here).
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	ch.QueueBind(q.Name, "otp.send.completed", name("pasarela.events"), false, nil)
	events, _ := ch.Consume(q.Name, "", true, true, false, false, nil)
	// RPC replies come on direct reply-to, consumed before anything is published to it.
	replies, _ := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)

	publish := func(queue, id string, body any, replyTo string) string {
		payload, _ := json.Marshal(body)
		traceparent := "00-" + hexOf(16) + "-" + hexOf(8) + "-01"
		msg := amqp.Publishing{MessageId: id, ContentType: "application/json", DeliveryMode: amqp.Persistent,
			Headers: amqp.Table{"traceparent": traceparent}, Body: payload, ReplyTo: replyTo, CorrelationId: id}
		if err := ch.Publish(name("pasarela"), queue, true, false, msg); err != nil {
			log.Fatal(err)
		}
		if c := <-confirms; !c.Ack {
			log.Fatal("the broker did not confirm ", queue)
		}
		return traceparent
	}
	wait := func(from <-chan amqp.Delivery, match func(amqp.Delivery, map[string]any) bool) map[string]any {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case d := <-from:
				var body map[string]any
				if json.Unmarshal(d.Body, &body) == nil && match(d, body) {
					return body
				}
			case <-deadline:
				log.Fatal("no answer in time")
			}
		}
	}

	requestID, mobile := uuid(), fmt.Sprintf("+57300%07d", time.Now().UnixNano()%10000000)
	traceparent := publish("otp.send", requestID, map[string]any{ // message_id = request_id: publishing twice is safe
		"request_id": requestID, "tenant": "acme", "provider": "danaconnect", "channel": "sms",
		"destination": map[string]any{"mobile": mobile},
		"code":        map[string]any{"type": "numeric", "length": 6, "expires_in_s": 300},
		"danaconnect": map[string]any{"id_conversation": 824541,
			"values": []map[string]string{{"key": "COD1_MOBILE", "value": mobile}}}}, "")
	fmt.Println("published otp.send", requestID, "traceparent", traceparent)
	sent := wait(events, func(_ amqp.Delivery, e map[string]any) bool { return e["request_id"] == requestID })
	out, _ := json.Marshal(sent)
	fmt.Println("otp.send.completed", string(out))
	if sent["status"] != "sent" {
		os.Exit(1)
	}

	var code string
	if sim := os.Getenv("VENDOR_SIM_URL"); sim != "" {
		r, err := http.Get(sim + "/sim/inbox?to=" + url.QueryEscape(mobile))
		if err != nil {
			log.Fatal(err)
		}
		var inbox []map[string]any
		json.NewDecoder(r.Body).Decode(&inbox)
		code = inbox[len(inbox)-1]["code"].(string)
	} else {
		fmt.Print("code: ")
		code, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	}
	verificationID := uuid()
	publish("otp.verify", verificationID, map[string]any{"verification_id": verificationID,
		"request_id": requestID, "code": strings.TrimSpace(code)}, "amq.rabbitmq.reply-to")
	reply := wait(replies, func(d amqp.Delivery, _ map[string]any) bool { return d.CorrelationId == verificationID })
	out, _ = json.Marshal(reply)
	fmt.Println("otp.verify reply", string(out))
	if reply["outcome"] != "verified" {
		os.Exit(1)
	}
}
