package io.tuneline.common.topic;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

/**
 * Creates every platform topic up front with several partitions, so that partition counts are
 * chosen on purpose rather than by broker auto-creation. Used by {@code ./platform up}; in clusters
 * the Helm chart declares the topics instead.
 *
 * <p>Usage: {@code TopicProvisioner <bootstrap-servers> [partitions]}.
 */
public final class TopicProvisioner {

    private TopicProvisioner() {}

    /** Creates the missing topics and returns the names it created. */
    public static List<String> createMissing(String bootstrap, int partitions)
            throws ExecutionException, InterruptedException, java.util.concurrent.TimeoutException {
        try (Admin admin =
                Admin.create(
                        Map.of(
                                AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
                                bootstrap,
                                AdminClientConfig.CLIENT_ID_CONFIG,
                                "tuneline-topic-provisioner"))) {
            Set<String> existing =
                    new HashSet<>(admin.listTopics().names().get(30, TimeUnit.SECONDS));
            List<NewTopic> missing =
                    Topics.all().stream()
                            .filter(t -> !existing.contains(t))
                            .map(t -> new NewTopic(t, partitions, (short) 1))
                            .toList();
            admin.createTopics(missing).all().get(30, TimeUnit.SECONDS);
            return missing.stream().map(NewTopic::name).toList();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: TopicProvisioner <bootstrap-servers> [partitions]");
            System.exit(2);
        }
        int partitions = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        List<String> created = createMissing(args[0], partitions);
        System.out.printf(
                "topics: %d created (%d partitions each), %d already present%n",
                created.size(), partitions, Topics.all().size() - created.size());
    }
}
