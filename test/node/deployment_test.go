package node

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// suiteDeployment is a one-pod Deployment of the suite's own images: container, from an image
// imported into containerd (never pulled), under the restricted Pod Security Standard, with the
// given Secret volumes (name -> Secret) and the label app=name.
func suiteDeployment(namespace, name string, container corev1.Container, volumes ...corev1.Volume) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	container.ImagePullPolicy = corev1.PullNever
	container.SecurityContext = restrictedContainer()
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:      []corev1.Container{container},
					Volumes:         volumes,
					SecurityContext: restrictedPod(),
				},
			},
		},
	}
}

// secretVolume mounts the Secret secret as the volume named volume.
func secretVolume(volume, secret string) corev1.Volume {
	return corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}
}

// httpReadiness probes path on port every second.
func httpReadiness(path string, port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port)}},
		PeriodSeconds: 1,
	}
}
