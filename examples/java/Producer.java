// An otp.send through pasarela, its result event, then the code verified by RPC (Java, the RabbitMQ
// Java client). Run: java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar Producer.java
// (Debian's librabbitmq-client-java; or the com.rabbitmq:amqp-client jar from Maven).
//
// AMQP_URL (default the local broker); PASARELA_NAMESPACE prefixes every name when set; VENDOR_SIM_URL
// reads the code from the vendor simulator's inbox, where a real user would type it. Exits 0 only when
// the code is verified. Bodies are built and read with plain strings to need no JSON library here; a
// real producer would use one (Jackson). Publishing rules: docs/CONTRACT.md.
import com.rabbitmq.client.*;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.*;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.*;
import java.util.concurrent.*;
import java.util.regex.*;

public class Producer {
    static final String NS = System.getenv().getOrDefault("PASARELA_NAMESPACE", "");
    static String name(String n) { return NS.isEmpty() ? n : NS + "." + n; }
    static String hex(int bytes) {
        byte[] b = new byte[bytes]; new SecureRandom().nextBytes(b);
        StringBuilder s = new StringBuilder(); for (byte x : b) s.append(String.format("%02x", x)); return s.toString();
    }
    static String field(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\"\\s*:\\s*\"([^\"]*)\"").matcher(json);
        return m.find() ? m.group(1) : null;
    }

    public static void main(String[] args) throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(System.getenv().getOrDefault("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"));
        try (Connection conn = factory.newConnection(); Channel ch = conn.createChannel()) {
            ch.confirmSelect(); // every publish below waits for the broker's confirm
            BlockingQueue<String> events = new LinkedBlockingQueue<>(), replies = new LinkedBlockingQueue<>();
            // Results: a queue of our own bound to pasarela.events (pasarela's own queues are never declared here).
            String q = ch.queueDeclare().getQueue();
            ch.queueBind(q, name("pasarela.events"), "otp.send.completed");
            ch.basicConsume(q, true, (tag, d) -> events.add(new String(d.getBody(), StandardCharsets.UTF_8)), tag -> {});
            // RPC replies come on direct reply-to, consumed before anything is published to it.
            ch.basicConsume("amq.rabbitmq.reply-to", true, (tag, d) -> replies.add(d.getProperties().getCorrelationId()
                + "\n" + new String(d.getBody(), StandardCharsets.UTF_8)), tag -> {});

            String requestId = UUID.randomUUID().toString(), mobile = String.format("+57300%07d", new Random().nextInt(10_000_000));
            String send = "{\"request_id\":\"" + requestId + "\",\"tenant\":\"acme\",\"provider\":\"danaconnect\",\"channel\":\"sms\","
                + "\"destination\":{\"mobile\":\"" + mobile + "\"},\"code\":{\"type\":\"numeric\",\"length\":6,\"expires_in_s\":300},"
                + "\"danaconnect\":{\"id_conversation\":824541,\"values\":[{\"key\":\"COD1_MOBILE\",\"value\":\"" + mobile + "\"}]}}";
            String traceparent = publish(ch, "otp.send", requestId, send, null); // message_id = request_id
            System.out.println("published otp.send " + requestId + " traceparent " + traceparent);
            String sent = waitFor(events, e -> requestId.equals(field(e, "request_id")));
            System.out.println("otp.send.completed " + sent);
            if (!"sent".equals(field(sent, "status"))) System.exit(1);

            String code;
            String sim = System.getenv("VENDOR_SIM_URL");
            if (sim != null) {
                String inbox = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(sim + "/sim/inbox?to="
                    + URLEncoder.encode(mobile, StandardCharsets.UTF_8))).build(), HttpResponse.BodyHandlers.ofString()).body();
                Matcher m = Pattern.compile("\"code\"\\s*:\\s*\"([^\"]*)\"").matcher(inbox);
                code = null; while (m.find()) code = m.group(1);
            } else {
                System.out.print("code: "); code = new Scanner(System.in).nextLine().trim();
            }
            String verificationId = UUID.randomUUID().toString();
            publish(ch, "otp.verify", verificationId, "{\"verification_id\":\"" + verificationId + "\",\"request_id\":\""
                + requestId + "\",\"code\":\"" + code + "\"}", "amq.rabbitmq.reply-to");
            String reply = waitFor(replies, r -> r.startsWith(verificationId + "\n"));
            reply = reply.substring(reply.indexOf('\n') + 1);
            System.out.println("otp.verify reply " + reply);
            System.exit("verified".equals(field(reply, "outcome")) ? 0 : 1);
        }
    }

    static String publish(Channel ch, String queue, String id, String body, String replyTo) throws Exception {
        String traceparent = "00-" + hex(16) + "-" + hex(8) + "-01";
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().messageId(id).contentType("application/json")
            .deliveryMode(2).headers(Map.of("traceparent", traceparent)).replyTo(replyTo).correlationId(id).build();
        ch.basicPublish(name("pasarela"), queue, true, props, body.getBytes(StandardCharsets.UTF_8));
        ch.waitForConfirmsOrDie(10_000);
        return traceparent;
    }

    static String waitFor(BlockingQueue<String> from, java.util.function.Predicate<String> match) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
            String item = from.poll(200, TimeUnit.MILLISECONDS);
            if (item != null && match.test(item)) return item;
        }
        throw new IllegalStateException("no answer in time");
    }
}
