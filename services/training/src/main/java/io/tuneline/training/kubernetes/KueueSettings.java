package io.tuneline.training.kubernetes;

import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Optional;
import java.util.TreeMap;

/**
 * Cluster queueing through Kueue (kueue.sigs.k8s.io): each run's Job is created suspended with the
 * {@code kueue.x-k8s.io/queue-name} label, and Kueue un-suspends it once the queue's ClusterQueue
 * has quota for it. The Workload's priority comes from the {@code kueue.x-k8s.io/priority-class}
 * label (a {@code WorkloadPriorityClass}); without one, Kueue takes the pod's {@code
 * priorityClassName}.
 *
 * @param enabled whether Jobs go through Kueue
 * @param queueName the LocalQueue in the Jobs' namespace
 * @param priorityClasses WorkloadPriorityClass by the lowest job priority ({@code
 *     resources.priority}) it applies to: {@code {0: normal, 10: high}} gives priorities 0 to 9
 *     {@code normal} and 10 and above {@code high}
 * @param defaultPriorityClass for a priority below every key of {@code priorityClasses}; empty to
 *     set no label (Kueue then uses the pod's priorityClassName, or 0)
 */
public record KueueSettings(
        boolean enabled,
        String queueName,
        NavigableMap<Integer, String> priorityClasses,
        Optional<String> defaultPriorityClass) {

    public static final String LABEL_QUEUE_NAME = "kueue.x-k8s.io/queue-name";
    public static final String LABEL_PRIORITY_CLASS = "kueue.x-k8s.io/priority-class";

    public static final KueueSettings OFF =
            new KueueSettings(false, "", new TreeMap<>(), Optional.empty());

    public KueueSettings {
        if (enabled && (queueName == null || queueName.isBlank())) {
            throw new IllegalArgumentException(
                    "Kueue is enabled but no queue is named: set"
                            + " tuneline.training.kubernetes.kueue.queue-name (the chart's"
                            + " training.kueue.queueName) to the LocalQueue of the run Jobs");
        }
        priorityClasses = new TreeMap<>(priorityClasses);
    }

    /**
     * Parses {@code min=class} entries ({@code 0=tuneline-normal}, {@code 10=tuneline-high}), as
     * the chart passes them in one comma-separated variable.
     */
    public static NavigableMap<Integer, String> parsePriorityClasses(List<String> entries) {
        NavigableMap<Integer, String> classes = new TreeMap<>();
        for (String entry : entries) {
            if (entry.isBlank()) {
                continue;
            }
            int eq = entry.indexOf('=');
            String min = eq < 0 ? "" : entry.substring(0, eq).trim();
            String name = eq < 0 ? "" : entry.substring(eq + 1).trim();
            try {
                if (name.isEmpty()) {
                    throw new NumberFormatException();
                }
                if (classes.put(Integer.parseInt(min), name) != null) {
                    throw new IllegalArgumentException(
                            "tuneline.training.kubernetes.kueue.priority-classes names priority "
                                    + min
                                    + " twice");
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(
                        "tuneline.training.kubernetes.kueue.priority-classes entry '"
                                + entry
                                + "' is not <lowest job priority>=<WorkloadPriorityClass>, e.g."
                                + " 10=tuneline-high");
            }
        }
        return classes;
    }

    /** The WorkloadPriorityClass of a run with this job priority, if any. */
    public Optional<String> priorityClass(int priority) {
        Map.Entry<Integer, String> entry = priorityClasses.floorEntry(priority);
        return entry != null ? Optional.of(entry.getValue()) : defaultPriorityClass;
    }
}
